"""The μ-BERT model: encoder, blockwise swapping, DMA, PoI, decoder, heads, checkpoint import, and micronbert's
warp-motion and volatility extensions."""
from .checkpoint import convert_official, load, load_official_checkpoint, save
from .config import CONFIGS, ModelConfig, named_config
from .dma import DiagonalMicroAttention, change_map, relative_change_map
from .factory import ModelInitConfig, create_model, list_models
from .heads import RecognitionHead, pool_patches
from .micronbert import MicronBERT, check_frames, reconstruct_images
from .motion import MotionHead, warped_pair
from .poi import poi_saliency
from .swapping import blockwise_swap_mask, swap_patches
from .vit import VisionTransformer
from .volatility import VolatilityHead, surprise_map

__all__ = [
    "CONFIGS", "DiagonalMicroAttention", "MicronBERT", "ModelConfig", "ModelInitConfig", "MotionHead",
    "RecognitionHead", "VisionTransformer", "VolatilityHead",
    "blockwise_swap_mask", "change_map", "check_frames", "convert_official", "create_model", "list_models",
    "load", "load_official_checkpoint", "named_config", "poi_saliency", "pool_patches", "reconstruct_images",
    "relative_change_map", "save", "surprise_map", "swap_patches", "warped_pair",
]

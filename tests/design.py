"""What DESIGN.md section 3 names, for the tests that check the graph against it."""

# Every asset of the graph: sources, dataset, caches, training, evaluation.
DESIGN_ASSETS = (
    "films",
    "clip_ranges",
    "caption_files",
    "stills",
    "still_caption_txt",
    "clips",
    "captions",
    "text_cache",
    "latent_cache",
    "still_captions",
    "still_text_cache",
    "still_latent_cache",
    "training_set",
    "dataset_report",
    "lora_checkpoints",
    "eval_videos",
    "best_lora",
)

"""Captioning (no Dagster here): captioner backends, caption rules and the caption files.

- `backends`: `CaptionerSettings`, `load_captioner` (BLIP-2 or a Qwen-VL, from a local folder);
- `vlm`, `video_patches`: Qwen2-VL, Qwen2.5-VL and Qwen3-VL captioning a clip as a video;
- `rules`: trigger phrase, banned words, cleaning model output;
- `store`: `captions/<clip>.txt`, written by the captioner, never over a hand edit;
- `tiny`: random-weight plumbing captioners built offline, for tests and the demo.
"""

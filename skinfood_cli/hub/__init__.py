"""The Hugging Face Hub: the portable model folder, `--model hf://ORG/NAME[@REVISION]` and `skinfood push`.

folder.py    the folder format: model.safetensors + config.json + README.md (write, read, check, load)
card.py      its README.md: the run's model card under Hub front matter, or a generated one
download.py  hf:// names: resolve, download into the Hugging Face cache, check, list what is cached
publish.py   build a folder for a run (`skinfood export --format hub`) and upload it (`skinfood push`)

Nothing is re-exported here: `backends` loads folders through folder.py, which must not
pull in the Hub client, and the client (huggingface_hub) is imported only where it is used.
"""

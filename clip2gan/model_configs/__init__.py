"""open_clip model configs shipped with clip2gan (JSON files; see `clip2gan.toy.clip.register`)."""

"""Dataset commands: download the real dogImages, synthesise an offline sample, check a folder."""

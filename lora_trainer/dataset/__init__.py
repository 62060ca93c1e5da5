"""Dataset preparation (the Dataset sub-tab's workbench, the ``dataset`` CLI and API): a folder of pictures
imported into a kohya-layout project, cropped and resized, tagged, its captions edited and checked.

Torch-free (Pillow, numpy; onnxruntime only for the optional WD14 tagger). The host's own taggers and
image generation reach it as callables from the host adapter: nothing here imports the WebUI.
"""

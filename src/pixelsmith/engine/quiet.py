"""What the model libraries print that a user cannot act on, kept out of the terminal."""

from __future__ import annotations

import logging
import warnings


def quiet_model_libraries() -> None:
    """What diffusers and transformers print while a model loads, unless pixelsmith logs at
    debug: their per-component loading bars (a local load shows none; a download shows the hub's
    one bar), and warnings a user cannot act on (image processors that would like torchvision,
    float32 casts of a model loaded in float32, a deprecated argument diffusers passes to the
    hub). Their errors still reach the log."""
    if logging.getLogger("pixelsmith").isEnabledFor(logging.DEBUG):
        return
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging
    from huggingface_hub.utils.tqdm import disable_progress_bars, enable_progress_bars

    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity_error()
        library.disable_progress_bar()
    # A download shows one bar, the bytes from the network; the hub's second bar counts the
    # same bytes again as they are written to disk.
    disable_progress_bars("huggingface_hub.snapshot_download")
    enable_progress_bars("huggingface_hub.snapshot_download.transfer")
    warnings.filterwarnings(
        "ignore",
        message="The `local_dir_use_symlinks` argument is deprecated",
        category=UserWarning,
    )

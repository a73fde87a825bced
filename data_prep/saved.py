"""Reading a dataset that `moon-rl data prepare --task ...` saved (`datasets.save_to_disk`), as one line on error.

`load_saved_dataset(path)` is the one door every `--data DIR` reader goes through (sft, grpo, `rewards check`;
`moon_rl.file_checks` re-exports it beside the other input checks).
"""

from __future__ import annotations

from pathlib import Path

from data_prep.errors import DataPrepError


def load_saved_dataset(path: str | Path, flag: str = "--data"):
    """`datasets.load_from_disk(path)` with a truncated or corrupt arrow file, or a broken state.json /
    dataset_info.json, as one line naming the folder. A folder that is no saved dataset raises
    FileNotFoundError as datasets does (callers word that case themselves)."""
    import datasets
    import pyarrow as pa

    # A `map` over a dataset loaded from disk writes its cache-*.arrow files beside the dataset's own, into the
    # user's --data folder (TRL's tokenisation does). Without caching they go to a temporary folder instead.
    datasets.disable_caching()
    try:
        return datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as err:
        detail = " ".join(str(err).split())[:200] or type(err).__name__
        raise DataPrepError(
            f"{flag} {path}: the saved dataset is unreadable, its files are truncated or corrupt ({detail}); "
            "prepare it again with `moon-rl data prepare --task ...`"
        ) from None

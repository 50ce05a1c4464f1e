"""The Hugging Face Hub: push a recorded dataset, name a Hub checkpoint in a preset, push a trained policy.

Local paths always win: a preset's `checkpoint: user/model` is the directory `user/model` next to the
preset when that exists, and the Hub repo `user/model` only when it does not (`hf://user/model` forces the
Hub). Downloads go through huggingface_hub's cache, so a checkpoint fetched once also loads offline
(`HF_HUB_OFFLINE=1`). Every Hub failure (no network, no token, a repo that isn't there) is a `HubError`
that says what to do and loses nothing: a dataset whose push failed is still complete on disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HUB_PREFIX = "hf://"
# owner/name as the Hub spells repo ids (an optional @revision follows in preset references).
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HubError(RuntimeError):
    """A Hub operation failed; the message names the repo and the fix."""


class HubCheckpointError(HubError, FileNotFoundError):
    """A preset's Hub checkpoint could not be fetched: to `run` and `trials` it is a missing checkpoint."""


def check_repo_id(repo_id: str, what: str = "--repo-id") -> str:
    if not _REPO_ID.match(repo_id or ""):
        raise HubError(f"{what} {repo_id!r} is not a Hub repo id; write it as OWNER/NAME (e.g. alice/salt_bottle)")
    return repo_id


# -- datasets ------------------------------------------------------------------------------------------
@dataclass
class PushPlan:
    """What a dataset push uploads: the files LeRobotDataset.push_to_hub sends (it skips `images/`, the
    temporary PNG frames, and `videos/` when asked to)."""

    repo_id: str
    root: Path
    files: list[str] = field(default_factory=list)  # relative to root
    skipped: list[str] = field(default_factory=list)
    bytes: int = 0

    def summary(self) -> str:
        return f"{len(self.files)} files, {self.bytes / 1e6:.1f} MB from {self.root} to the Hub dataset {self.repo_id}"


def dataset_push_plan(root: str | Path, repo_id: str, push_videos: bool = True) -> PushPlan:
    root = Path(root)
    check_repo_id(repo_id)
    if not (root / "meta" / "info.json").is_file():
        raise HubError(f"{root} is not a LeRobotDataset (no meta/info.json); record into it first")
    skip_dirs = {"images"} | (set() if push_videos else {"videos"})
    plan = PushPlan(repo_id=repo_id, root=root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        # Our recorder's staging and journal directories start with a dot: never part of a dataset.
        if rel.split("/", 1)[0] in skip_dirs or any(part.startswith(".") for part in rel.split("/")):
            plan.skipped.append(rel)
            continue
        plan.files.append(rel)
        plan.bytes += path.stat().st_size
    return plan


def push_dataset(root: str | Path, repo_id: str, private: bool | None = None, push_videos: bool = True) -> PushPlan:
    """Upload a finished dataset with LeRobot's own `push_to_hub` (repo, files, card, version tag)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    plan = dataset_push_plan(root, repo_id, push_videos)
    try:
        dataset = LeRobotDataset(repo_id, root=plan.root)
        dataset.push_to_hub(private=private, push_videos=push_videos)
    except Exception as exc:  # network, auth, offline mode: the dataset on disk is untouched
        raise HubError(
            f"could not push {plan.root} to the Hub dataset {repo_id}: {type(exc).__name__}: {exc}. The dataset is "
            f'complete on disk; log in (`hf auth login`) and with network run: python -c "from '
            f"lerobot.datasets.lerobot_dataset import LeRobotDataset; LeRobotDataset('{repo_id}', "
            f"root='{plan.root}').push_to_hub()\""
        ) from exc
    return plan


# -- checkpoints ---------------------------------------------------------------------------------------
def preset_checkpoint(value: str, base: Path) -> str:
    """A preset's `checkpoint:` value as a local absolute path, or `hf://REPO[@REV]` for the Hub. The local
    directory (relative to the preset file) wins whenever it exists."""
    if value.startswith(HUB_PREFIX):
        ref = value[len(HUB_PREFIX) :]
        check_repo_id(ref.split("@", 1)[0], "checkpoint:")
        return value
    local = (base / Path(value).expanduser()).resolve()
    if local.exists() or not _REPO_ID.match(value.split("@", 1)[0]):
        return str(local)
    return HUB_PREFIX + value


def is_hub_ref(value: str | Path) -> bool:
    return str(value).startswith(HUB_PREFIX)


def download_checkpoint(ref: str, download: Callable[..., str] | None = None) -> Path:
    """Fetch `hf://REPO[@REV]` (a policy's `pretrained_model` files) into huggingface_hub's cache and
    return the local directory. `download`: huggingface_hub.snapshot_download's signature."""
    if download is None:
        from huggingface_hub import snapshot_download as download
    repo_id, _, revision = ref.removeprefix(HUB_PREFIX).partition("@")
    check_repo_id(repo_id, "checkpoint:")
    try:
        return Path(download(repo_id=repo_id, revision=revision or None, repo_type="model"))
    except Exception as exc:
        raise HubCheckpointError(
            f"could not fetch the checkpoint {repo_id} from the Hub ({type(exc).__name__}: {exc}). Download it "
            f"once with network (`hf download {repo_id}`, then it loads offline from the cache), or point the "
            "preset's checkpoint at a local directory."
        ) from exc


def push_checkpoint(checkpoint: str | Path, repo_id: str, private: bool | None = None) -> list[str]:
    """Upload a trained policy's `pretrained_model` directory (config, weights, processors, train config)
    to a Hub model repo. Done by us after training, not inside LeRobot's loop, so a failed push can never
    cost the training: the checkpoint is on disk first, and the error says how to upload it later."""
    from huggingface_hub import HfApi

    checkpoint = Path(checkpoint)
    check_repo_id(repo_id)
    files = sorted(p.name for p in checkpoint.iterdir() if p.is_file())
    if "config.json" not in files or "model.safetensors" not in files:
        raise HubError(f"{checkpoint} is not a policy checkpoint (no config.json/model.safetensors); nothing pushed")
    try:
        api = HfApi()
        api.create_repo(repo_id=repo_id, private=private, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=checkpoint, repo_type="model", commit_message="lekiwi-drift")
    except Exception as exc:
        raise HubError(
            f"could not push {checkpoint} to the Hub model {repo_id}: {type(exc).__name__}: {exc}. The checkpoint "
            f"is saved; log in (`hf auth login`) and with network run: hf upload {repo_id} {checkpoint}"
        ) from exc
    return files

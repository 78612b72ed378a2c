"""Fail fast without the Hugging Face Hub.

Without a network, `from_pretrained("facebook/...")` and `load_dataset("amedcj/...")` spend about 30 s in
huggingface_hub's retries before they fail. A training script should instead say within seconds what to do offline.
`go_offline_if_hub_unreachable` tries one TCP connection to the Hub endpoint; when it fails, it switches this process
to offline mode, so that every later Hub call answers at once from the local cache or with an error.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from urllib.parse import urlparse

logger = logging.getLogger(__name__)


def hub_is_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint (`HF_ENDPOINT`) opens within `timeout` seconds; `False` when
    offline mode is already on."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def go_offline_if_hub_unreachable(timeout: float = 3.0) -> bool:
    """Turn on offline mode for this process if the Hub cannot be reached. Returns whether offline mode is on."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    if hub_is_reachable(timeout):
        return False
    logger.warning(f"the Hugging Face Hub ({constants.ENDPOINT}) is unreachable: offline mode, local files only")
    os.environ["HF_HUB_OFFLINE"] = "1"
    # The libraries read the variable when they are imported, which has happened; their module-level flags are what
    # their download functions check on every call.
    constants.HF_HUB_OFFLINE = True
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        datasets_config.HF_HUB_OFFLINE = True
    return True

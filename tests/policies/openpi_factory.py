"""``robodecode eval --policy openpi_factory:client``: openpi's client in front of a test server."""

import os
import warnings

import gymnasium as gym


def client(env: gym.Env):
    """The openpi ``WebsocketClientPolicy`` for the server at ``$ROBODECODE_TEST_PORT``."""
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    with warnings.catch_warnings():  # openpi-client 0.1.2's own connect() call
        warnings.simplefilter("ignore", DeprecationWarning)
        return WebsocketClientPolicy("127.0.0.1", int(os.environ["ROBODECODE_TEST_PORT"]))

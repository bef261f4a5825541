"""``agentrun keys``: the keys that encrypt the secrets the service stores
(AGENTRUN_ENCRYPTION_KEYS, app/core/encryption.py): make one; re-encrypt every row with the
first."""

import argparse

from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.session import CommandError, run_in_session
from app.core.config import Settings
from app.core.encryption import SETTING, new_key
from app.webhooks.stored_secrets import reseal_all


def generate_key(args: argparse.Namespace, settings: Settings) -> None:
    print(new_key())


def rotate_keys(args: argparse.Namespace, settings: Settings) -> None:
    keyring = settings.keyring
    if keyring.sealing_id is None:
        raise CommandError(f"{SETTING} is not set: nothing to encrypt with.")

    async def work(session: AsyncSession) -> str:
        changed = await reseal_all(session, keyring)
        return (
            f"{changed} webhook endpoint(s) re-encrypted with key {keyring.sealing_id}; every "
            f"stored secret is now under it, so the other keys of {SETTING} may be dropped."
        )

    print(run_in_session(settings, work))


def add_key_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    keys = commands.add_parser(
        "keys", help=f"the keys encrypting stored secrets ({SETTING})"
    ).add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys.add_parser("generate", help=f"print a new key, to put first in {SETTING}").set_defaults(
        handler=generate_key
    )
    keys.add_parser(
        "rotate",
        help=f"re-encrypt every stored secret with the first key of {SETTING}, so that the "
        "others may be dropped",
    ).set_defaults(handler=rotate_keys)

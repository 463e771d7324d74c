"""twistd plugin: ``twistd -n imapd --data DIR --imap tcp:1143 [--store URL]``.

Same options (``imapd.cli_serve.ServeOptions``) and the same assembly
(``imapd.app.build_service``) as ``imapd serve``. Kept tiny and
import-cheap: twistd imports every plugin just to list them, so nothing
here imports the reactor or the server until ``makeService``.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer  # type: ignore[import-untyped]

from imapd.cli_serve import ServeOptions


@implementer(IServiceMaker, IPlugin)
class ImapdServiceMaker:
    tapname = "imapd"
    description = "imapd, an IMAP4rev1 server"
    options = ServeOptions

    def makeService(self, options: ServeOptions) -> Any:
        """The same service as ``imapd serve`` in one process. An unusable
        store is one line and exit status 2, as with ``imapd serve``;
        ``--workers`` needs ``imapd serve`` (twistd runs one process)."""
        import sys

        from imapd.app import StoreError, bridge_stdlib_logging, build_service
        from imapd.net.runtime import global_reactor

        bridge_stdlib_logging()  # twistd runs Twisted's logger; storage logs via logging

        if options["workers"] != 1:
            print("imapd: --workers needs 'imapd serve' (twistd runs one process)",
                  file=sys.stderr)
            raise SystemExit(2)
        from imapd.net import privileges

        config, reactor = options.config(), global_reactor()
        try:  # as imapd serve: bind as root, then become --user (twistd's --uid is too early)
            identity = privileges.plan(options["user"], options["group"], bool(
                options["allow-root"]) or privileges.allow_root_from_environment())
            if identity is None:
                privileges.check_data_dir(config.data_dir)
            built = build_service(config, options.listeners(), reactor)
        except (StoreError, privileges.PrivilegeError) as error:
            print(error, file=sys.stderr)
            raise SystemExit(2) from None
        return privileges.run_as(built, config.data_dir, identity, reactor)


service_maker = ImapdServiceMaker()

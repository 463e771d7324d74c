"""twistd plugin: ``twistd -n imapd --data DIR --imap tcp:1143``.

Same options (``imapd.cli.ServeOptions``) and the same assembly
(``imapd.app.build_service``) as ``imapd serve``. Kept tiny and
import-cheap: twistd imports every plugin just to list them, so nothing
here imports the reactor or the server until ``makeService``.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from zope.interface import implementer  # type: ignore[import-untyped]

from imapd.cli import ServeOptions


@implementer(IServiceMaker, IPlugin)
class ImapdServiceMaker:
    tapname = "imapd"
    description = "imapd, an IMAP4rev1 server"
    options = ServeOptions

    def makeService(self, options: ServeOptions) -> Any:
        from imapd.app import build_service
        from imapd.net.runtime import global_reactor

        return build_service(options.config(), options.listeners(), global_reactor())


service_maker = ImapdServiceMaker()

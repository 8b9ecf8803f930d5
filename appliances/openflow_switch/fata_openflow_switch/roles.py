"""Several controllers at once: their roles and what each is sent (specification 1.3.5,
6.3.5 "Multiple Controllers" and 7.3.9-7.3.10), as a sans-IO engine over channel keys.

Every channel starts ``EQUAL``.  ROLE_REQUEST makes its channel ``MASTER`` (any other
master becomes ``SLAVE``), ``SLAVE`` or ``EQUAL``, or only reads the role (``NOCHANGE``);
a MASTER or SLAVE request whose ``generation_id`` is older than the newest seen (compared
as the specification says, by the sign of the 64-bit difference) is refused
``OFPRRFC_STALE``, an unknown role ``OFPRRFC_BAD_ROLE``.  A slave may not change the
switch: the messages that would (flow, group, meter, port and table mods, PACKET_OUT) are
refused ``OFPBRC_IS_SLAVE``.  The asynchronous messages (PACKET_IN, FLOW_REMOVED,
PORT_STATUS) go to every channel whose asynchronous configuration (GET_ASYNC/SET_ASYNC,
one mask per role kind and message, bit ``1 << reason``) takes their reason; by default
masters and equals get them all, slaves only PORT_STATUS.

Nothing here reads a socket: the adapter names each channel by a key of its own and asks.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from . import messages as M
from .ofp_const import BadRequestCode, ControllerRole, ErrorType, RoleRequestFailedCode

ALL_REASONS = 0xFFFFFFFF
# (master or equal, slave) masks, as GET_ASYNC reports them
DEFAULT_PACKET_IN = (ALL_REASONS, 0)
DEFAULT_PORT_STATUS = (ALL_REASONS, ALL_REASONS)
DEFAULT_FLOW_REMOVED = (ALL_REASONS, 0)
MODIFYING = (M.FlowMod, M.GroupMod, M.MeterMod, M.PortMod, M.TableMod, M.PacketOut)


@dataclass(slots=True)
class ChannelRole:
    role: int = ControllerRole.EQUAL
    packet_in: tuple[int, int] = DEFAULT_PACKET_IN
    port_status: tuple[int, int] = DEFAULT_PORT_STATUS
    flow_removed: tuple[int, int] = DEFAULT_FLOW_REMOVED


def _error(msg: M.Message, error_type: int, code: int) -> M.ErrorMsg:
    return M.ErrorMsg(error_type, code, msg.encode()[:64], xid=msg.xid)


class Roles:
    """The channels' roles; one generation ID for the switch."""

    def __init__(self) -> None:
        self.channels: dict[Hashable, ChannelRole] = {}
        self.generation: int | None = None

    def add(self, key: Hashable) -> None:
        self.channels[key] = ChannelRole()

    def remove(self, key: Hashable) -> None:
        self.channels.pop(key, None)

    def role(self, key: Hashable) -> int:
        return self.channels[key].role

    def handle(self, key: Hashable, msg: M.Message) -> list[M.Message] | None:
        """The answers (none for SET_ASYNC) to a role or async-config message, or the
        refusal of a change a slave may not make; None for every other message, which
        goes to the switch."""
        channel = self.channels[key]
        if isinstance(msg, M.RoleRequest):
            return [self._role_request(key, channel, msg)]
        if isinstance(msg, M.GetAsyncRequest):
            return [M.GetAsyncReply(channel.packet_in, channel.port_status,
                                    channel.flow_removed, xid=msg.xid)]
        if isinstance(msg, M.SetAsync):
            channel.packet_in, channel.port_status = msg.packet_in_mask, msg.port_status_mask
            channel.flow_removed = msg.flow_removed_mask
            return []
        if channel.role == ControllerRole.SLAVE and isinstance(msg, MODIFYING):
            return [_error(msg, ErrorType.BAD_REQUEST, BadRequestCode.IS_SLAVE)]
        return None

    def _role_request(self, key: Hashable, channel: ChannelRole,
                      msg: M.RoleRequest) -> M.Message:
        role = msg.role
        if role not in tuple(ControllerRole):
            return _error(msg, ErrorType.ROLE_REQUEST_FAILED, RoleRequestFailedCode.BAD_ROLE)
        if role in (ControllerRole.MASTER, ControllerRole.SLAVE):
            if self.generation is not None and _older(msg.generation_id, self.generation):
                return _error(msg, ErrorType.ROLE_REQUEST_FAILED, RoleRequestFailedCode.STALE)
            self.generation = msg.generation_id
        if role == ControllerRole.MASTER:
            for other_key, other in self.channels.items():
                if other_key != key and other.role == ControllerRole.MASTER:
                    other.role = ControllerRole.SLAVE
        if role != ControllerRole.NOCHANGE:
            channel.role = role
        return M.RoleReply(channel.role, self.generation or 0, xid=msg.xid)

    def wants(self, key: Hashable, msg: M.Message) -> bool:
        """Whether channel ``key`` is sent the asynchronous message ``msg``."""
        channel = self.channels[key]
        which = 1 if channel.role == ControllerRole.SLAVE else 0
        if isinstance(msg, M.PacketIn):
            mask = channel.packet_in[which]
        elif isinstance(msg, M.PortStatus):
            mask = channel.port_status[which]
        elif isinstance(msg, M.FlowRemoved):
            mask = channel.flow_removed[which]
        else:
            return True
        return bool(mask >> msg.reason & 1) if msg.reason < 32 else False


ASYNC = (M.PacketIn, M.PortStatus, M.FlowRemoved)
"""The messages a switch sends unasked, to every channel that wants them."""


def _older(generation: int, newest: int) -> bool:
    """6.3.5: ``(int64)(generation - newest) < 0``."""
    distance = (generation - newest) & (1 << 64) - 1
    return distance >= 1 << 63

"""The matcher's protobuf messages to and from the dispatcher's own values: the conversion a
``DispatchRequest`` carries, the request a stored event is replayed as, and the status updates
in ``trackai.status``'s wire form."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from google.protobuf.json_format import ParseDict
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.common.v1 import events_pb2 as common_pb
from trackai.matcher.v1 import events_pb2 as matcher_pb
from trackai_dispatcher.adapters.meta import event_payload
from trackai_dispatcher.domain.conversion import (
    HASHED_KEYS,
    Conversion,
    CustomData,
    ServerEvent,
    UserData,
)
from trackai_dispatcher.service_layer.ports import StatusUpdate, StoredDispatch


def server_event(event: matcher_pb.ServerEvent) -> ServerEvent:
    """The fields of ``event`` the delivery rules read."""
    user: UserData | None = None
    if event.HasField("user_data"):
        data = event.user_data
        user = UserData(
            hashed={key: tuple(values) for key in HASHED_KEYS if (values := getattr(data, key))},
            external_id=tuple(data.external_id),
            client_ip_address=data.client_ip_address,
            client_user_agent=data.client_user_agent,
            fbc=data.fbc,
            fbp=data.fbp,
        )
    custom = event.custom_data
    return ServerEvent(
        event_id=event.event_id,
        event_name=event.event_name,
        event_time=event.event_time,
        action_source=event.action_source,
        event_source_url=event.event_source_url,
        user_data=user,
        custom_data=CustomData(custom.value, custom.currency),
    )


def conversion(request: matcher_pb.DispatchRequest) -> Conversion:
    """What the dispatcher delivers of a ``DispatchRequest``."""
    return Conversion(
        tenant_id=request.tenant_id,
        pixel_id=request.pixel_id,
        funnel_id=request.funnel_id,
        conversion_id=request.conversion_id,
        event=server_event(request.event),
        payload=event_payload(request.event),
        match_stage=matcher_pb.MatchStage.Name(request.match_stage) if request.match_stage else "",
        match_score=request.match_score,
        emq=request.emq,
    )


def replay_request(stored: StoredDispatch) -> matcher_pb.DispatchRequest:
    """The DispatchRequest a stored event came in (a new message id: it is a new message)."""
    return _request(stored)


def request_of(conversion: Conversion) -> matcher_pb.DispatchRequest:
    """A ``DispatchRequest`` carrying ``conversion`` (when the received message is not at hand)."""
    return _request(conversion)


def _request(source: Conversion | StoredDispatch) -> matcher_pb.DispatchRequest:
    request = matcher_pb.DispatchRequest(
        message_id=uuid.uuid4().hex,
        tenant_id=source.tenant_id,
        funnel_id=source.funnel_id,
        pixel_id=source.pixel_id,
        conversion_id=source.conversion_id,
        match_score=source.match_score,
        emq=source.emq,
    )
    ParseDict(dict(source.payload), request.event)
    if source.match_stage:
        request.match_stage = matcher_pb.MatchStage.Value(source.match_stage)
    return request


def status_messages(updates: Sequence[StatusUpdate]) -> list[common_pb.StatusUpdate]:
    stamps: dict[datetime, Timestamp] = {}
    messages = []
    for update in updates:
        stamp = stamps.get(update.time)
        if stamp is None:
            stamp = stamps[update.time] = Timestamp()
            stamp.FromDatetime(update.time)
        messages.append(
            common_pb.StatusUpdate(
                tenant_id=update.tenant_id,
                entity=common_pb.STATUS_ENTITY_DISPATCH,
                entity_id=update.event_id,
                status=update.status,
                detail=update.detail,
                time=stamp,
            )
        )
    return messages

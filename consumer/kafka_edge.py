"""The Kafka edge on kafka-python: the firer's consumers, made usable from one asyncio loop. The
router's group reader, the subscriptions log (``KafkaLog``) and the shared producer are on
librdkafka (consumer/kafka_rd.py: fetching, decoding and producing in C); the types and the
thread both use are in consumer/kafka_shared.py.

kafka-python (3.x: 2.0.2 drops fetched records of a partition paused mid-batch, and advances its
position past them, which this service's backpressure would turn into loss) is not thread-safe,
so every call on a consumer runs on that consumer's own thread (``ClientThread``) and the loop
awaits it. Rebalance callbacks fire during poll on kafka-python's IO thread, where nothing may
block; ``_Listener`` hands them to the owner as plain functions, and holds the rebalance (without
blocking) until the owner's revoke says its final commit is done.

Errors: ``_unavailable`` is the one place a kafka-python error becomes the project's
``KafkaUnavailable``; every public method here goes through it (``ClientThread.call`` for
consumers), so nothing above this module knows kafka-python's exception tree.

- ``ConsumerThread``: the firer's group consumer of one fixed topic list, a ``MemberConsumer``
  (keeps fetching the partitions it keeps while a cooperative join is pending; rejoins when its
  heartbeats went unanswered for a session timeout; reports committed metadata of new
  partitions); commits are sent without waiting on the consumer thread; ``membership()`` tells
  the loop whether it may fire (``Membership``). It uses cooperative rebalancing (KIP-429): a
  new member adds partitions without revoking the others.
- ``PartitionReader``: partitions assigned directly (no group), positions kept by the owner: the
  firer's park topic (consumer/parking.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.abstract import RebalanceProtocol
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import (
    CommitFailedError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from kafka.future import Future as KafkaFuture
from kafka.net.manager import KafkaConnectionManager
from kafka.structs import MemberState, OffsetAndMetadata

from consumer.kafka_shared import (
    ClientThread,
    KafkaUnavailable,
    Offsets,
    RebalanceCallback,
    Record,
    ReleaseCallback,
    settle,
)
from messaging_lib.errors import ConfigError
from messaging_lib.kafka_config import KafkaSettings

log = logging.getLogger("consumer.kafka")


# --- the one error mapping -----------------------------------------------------------------------


def _unavailable(what: str, error: BaseException) -> KafkaUnavailable:
    return KafkaUnavailable(f"{what}: {error}")


@contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Turn any kafka-python error raised inside into ``KafkaUnavailable`` (the cause kept)."""
    try:
        yield
    except KafkaError as e:
        raise _unavailable(what, e) from e


def _records(batches: dict[TopicPartition, list[Any]]) -> list[Record]:
    """A poll's records; each partition's share its ``TopicPartition`` (the poll's key)."""
    polled = Record.polled
    return [polled(tp, m) for tp, msgs in batches.items() for m in msgs]


class _Listener(ConsumerRebalanceListener):
    """Runs on kafka-python's IO thread, where nothing may block or call the network: it hands
    over, and awaits (without blocking that thread) what the revoke callback returns.

    Why the revoke is awaited: kafka-python 3 refuses commits client-side from the moment a
    join starts until the rebalance completes (``generation_if_stable``), and it starts the
    follow-up join of a cooperative rebalance right after this callback returns. A revoke
    handled later (on the owner's loop) could not commit: the new owner repeated everything
    fired since the last commit that landed before the rebalance began (seen: 268 to 446 of 600
    messages in a restart under load). Awaited here, the member is still stable and owns the
    partitions, and the commit lands; ``hold_s`` bounds how long the rebalance waits for it."""

    def __init__(self, on_assigned: RebalanceCallback, on_revoked: ReleaseCallback,
                 on_lost: RebalanceCallback | None, hold_s: float) -> None:
        self._assigned, self._revoked, self._hold_s = on_assigned, on_revoked, hold_s
        self._lost = on_lost or on_revoked
        self.manager: KafkaConnectionManager | None = None  # the consumer's, once it exists

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        released = self._revoked(list(revoked))
        if released is not None and self.manager is not None and \
                not await _wait_on_io_loop(self.manager, released, self._hold_s):
            log.warning("the revoked partitions' commit took too long: rejoining without it",
                        extra={"fields": {"hold_s": self._hold_s}})

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        """Fenced (session expired, unknown member, illegal generation): the partitions may
        already be another member's, so nothing of them may be committed or fired."""
        self._lost(list(lost))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._assigned(list(assigned))


async def _wait_on_io_loop(manager: KafkaConnectionManager, done: concurrent.futures.Future[None],
                           timeout_s: float) -> bool:
    """Await, inside kafka-python's IO loop, a future completed by another thread: its completion
    resolves a kafka-python future through ``call_soon`` (thread-safe: it wakes the loop).
    False when ``timeout_s`` passed first."""
    woken = KafkaFuture()

    def wake(_: object) -> None:
        with suppress(RuntimeError):  # the IO loop closed: nobody waits any more
            manager.call_soon(lambda: None if woken.is_done else woken.success(None))
    done.add_done_callback(wake)
    try:
        await manager.wait_for(woken, int(timeout_s * 1000))
    except KafkaTimeoutError:
        return False
    return True


def learn_partitions(consumer: KafkaConsumer, topic_names: Collection[str], wait_s: float = 5.0) -> list[str]:
    """Call before subscribing; returns the topics still without partitions. The group leader
    assigns only the partitions its metadata knows, and kafka-python 3 does not rejoin by itself
    when a just-created topic shows up later (until metadata_max_age_ms, 5 minutes), so a consumer
    started right after its topic was made would sit idle."""
    deadline = time.monotonic() + wait_s
    for topic in topic_names:
        while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            time.sleep(0.1)
    return [topic for topic in topic_names if not consumer.partitions_for_topic(topic)]


# kafka-python's own metrics (sensors updated on every request, fetch and commit) are read by no
# one here: the firer exports its own. Off, the firer spent 1-4 % less CPU per fire (bench/firer_cost.py,
# three alternated pairs).
NO_CLIENT_METRICS = {"metrics_enabled": False}


def _group_config(settings: KafkaSettings, group_id: str, config: dict[str, Any]) -> dict[str, Any]:
    return dict(settings.client_kwargs(), group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
                partition_assignment_strategy=[CooperativeStickyAssignor], **NO_CLIENT_METRICS) | config


# --- membership: fetching through a cooperative rebalance, and knowing when we are fenced --------


class MemberConsumer(KafkaConsumer):
    """A KafkaConsumer that keeps fetching the partitions it keeps while a cooperative join is pending.

    Why: in kafka-python 3.0.12 ``KafkaConsumer._poll_once`` (kafka/consumer/group.py, ~line 834)
    returns ``{}`` as soon as ``self._coordinator.poll()`` returns False, and
    ``ConsumerCoordinator.poll`` (kafka/coordinator/consumer.py, ~line 389) calls
    ``ensure_active_group`` whenever ``need_rejoin()``, which waits out the poll's whole timeout and
    returns False while the JoinGroup is pending. So during any rebalance, however long (a dead
    member's session, 45 s by default), no record is fetched even for the partitions that keep
    their owner, and every partition of the group stops. The Java client keeps fetching during a
    cooperative (KIP-429) rebalance: partitions only leave after the join, through the revoke
    callback. This does the same: while a join is pending and the member still holds a generation
    (not fenced) and an assignment, the coordinator waits on the join for the poll's time as
    before, and then the fetcher call ``_poll_once`` makes (``Fetcher.fetch_records``) returns
    what arrived for the assigned, unpaused partitions without waiting (fetches are pipelined on
    the IO thread, so they arrive during the join's wait). The coordinator keeps (nearly) the
    whole poll on purpose: ``BaseCoordinator.join_group_async`` (kafka/coordinator/base.py, ~line
    468) sends a new JoinGroup when its join task finished while no poll awaited it, and a
    leader's new JoinGroup starts another rebalance: giving the join only a short slice of each
    poll made a leader start round after round and never settle.
    """


    #: Told, on the consumer thread inside poll, the committed offset and metadata of partitions
    #: about to be positioned from their commit (newly assigned), before any of their records.
    on_committed: Callable[[Offsets], None] | None = None

    def _refresh_committed_offsets(self, timeout_ms: int | None = None) -> bool:
        """kafka-python positions new partitions from their committed offset and drops the
        commit's metadata; this reads the commit first (one request, the same one kafka-python's
        sends), positions those partitions itself and reports offset and metadata."""
        missing = set(self._subscription.missing_fetch_positions())
        if missing and self.on_committed is not None:
            try:
                found = self._coordinator.fetch_committed_offsets(missing, timeout_ms=timeout_ms)
            except KafkaTimeoutError:
                found = {}
            committed: Offsets = {}
            for tp, om in found.items():
                if om is not None and om.offset >= 0 and self._subscription.is_assigned(tp):
                    self._subscription.seek(tp, om.offset)
                    committed[tp] = (om.offset, om.metadata or "")
            if committed:
                self.on_committed(committed)
        return super()._refresh_committed_offsets(timeout_ms=timeout_ms)

    def _poll_once(self, timer: Any, max_records: int, update_offsets: bool = True) -> dict[Any, list[Any]]:
        self._rejoin_if_expired()
        if not self._keeps_assignment_while_joining():
            return super()._poll_once(timer, max_records, update_offsets=update_offsets)
        if self._coordinator.poll(timeout_ms=timer.timeout_ms):
            return super()._poll_once(timer, max_records, update_offsets=update_offsets)  # joined meanwhile
        records, _ = self._fetcher.fetch_records(max_records, update_offsets=update_offsets, timeout_ms=0)
        return records

    def _rejoin_if_expired(self) -> None:
        """No answered heartbeat for a whole session timeout: the broker has expired this member
        (the process was stopped, its heartbeats starved or lost). kafka-python notices only
        when a heartbeat is answered UnknownMemberId, and a member whose heartbeats stopped
        altogether never does: it keeps its partitions while another member fires them. Here
        it drops its generation, so the next join reports its partitions lost
        (``on_partitions_lost``) and it joins again as a new member.

        Not while the coordinator is unknown (Kafka unreachable: a broker outage): a broker that
        comes back reloads its groups and gives every member a fresh session, so the member's
        next heartbeat is answered and it goes on with no rebalance at all; one that dropped its
        generation meanwhile joined as a new member, and that join waited a whole session timeout
        for its own old identity to expire (measured: fires resumed 11.5 s after a broker's
        return). kafka-python rediscovers the coordinator (which resets the heartbeat timers) and
        its heartbeat learns whether the member is still known. Firing waits meanwhile
        (``membership_of``: only an answered heartbeat renews the lease)."""
        coordinator = self._coordinator
        if (coordinator.state is not MemberState.STABLE or coordinator._generation.is_lost()
                or coordinator.coordinator_unknown()):
            return
        heartbeat = coordinator.heartbeat
        silent_s = time.monotonic() - max(heartbeat.last_receive, heartbeat.last_reset)
        if silent_s > heartbeat.config["session_timeout_ms"] / 1000:
            log.warning("no heartbeat answered for the session timeout: expired from the group, rejoining",
                        extra={"fields": {"silent_s": round(silent_s, 1), "heartbeat_enabled":
                                          coordinator._heartbeat_enabled}})
            coordinator.reset_generation()

    def _keeps_assignment_while_joining(self) -> bool:
        coordinator = self._coordinator
        return (coordinator.need_rejoin() and coordinator._rebalance_protocol is RebalanceProtocol.COOPERATIVE
                and not coordinator._generation.is_lost() and bool(self._subscription.assigned_partitions()))


@dataclass(frozen=True)
class Membership:
    """What a group member may do now. ``valid``: it is in the group (joined, not fenced, the
    broker heard from recently enough), so it may fire what it holds; ``reachable``: it knows
    its group coordinator; ``rebalancing``: a join is pending."""

    valid: bool
    reachable: bool
    rebalancing: bool


def membership_of(consumer: KafkaConsumer | None) -> Membership:
    """Read the coordinator's state from any thread (plain attribute reads; a stale answer is
    corrected on the next call). The lease: the broker drops a member whose heartbeats it has not
    seen for the session timeout, and its partitions go to another at the next rebalance; a
    member that has not had a heartbeat answered for ``LEASE_SHARE`` of that (its heartbeat thread
    starved, the process stopped, the network gone) may already be replaced, so it stops firing
    before the new owner can start. kafka-python itself only notices at its next heartbeat
    answer (UnknownMemberId), which a stopped process reads only after it resumed."""
    if consumer is None:
        return Membership(False, False, False)
    coordinator = consumer._coordinator
    state = coordinator.state
    reachable = not coordinator.coordinator_unknown()
    if state is MemberState.UNJOINED or coordinator._generation.is_lost():
        return Membership(False, reachable, state is MemberState.REBALANCING)
    heartbeat = coordinator.heartbeat
    if state is MemberState.REBALANCING:  # heartbeats pause during a join; the broker waits for it
        heard_s = time.monotonic() - max(heartbeat.last_receive, heartbeat.last_reset)
        return Membership(heard_s < heartbeat.config["max_poll_interval_ms"] / 1000, reachable, True)
    # Only an answered heartbeat renews the lease: kafka-python also resets its timers when it
    # (re)discovers the coordinator, which a stopped process does right after it resumes (its
    # requests timed out meanwhile), before its first heartbeat learns it was expired (seen: a
    # SIGSTOPped firer fired again after SIGCONT). After a join, the first answer comes within a
    # heartbeat interval.
    heard_s = time.monotonic() - heartbeat.last_receive
    # a heartbeat answered RebalanceInProgress (another member joined or left): a join is pending,
    # and it starts only at the next poll
    return Membership(heard_s < LEASE_SHARE * heartbeat.config["session_timeout_ms"] / 1000, reachable,
                      coordinator.need_rejoin())


LEASE_SHARE = 0.8
STUCK_SESSIONS = 3  # session timeouts without a stable membership, holding nothing, before starting over
MISSING_TOPIC_REFRESH_S = 2.0  # metadata fetches while the firer holds no partition (its topic may be new)


class CommitRejected(KafkaUnavailable):
    """The broker (or the client, mid-rebalance) refused a commit; ``reason`` is the error's name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"commit refused: {reason}: {detail}")
        self.reason = reason


# --- the firer's group consumer --------------------------------------------------------------------


class ConsumerThread:
    """A group consumer of a fixed topic list (the firer's). The rebalance callbacks run on
    kafka-python's IO thread and must only hand over; ``on_lost`` (default: ``on_revoked``) is
    called instead of ``on_revoked`` when the member was fenced and may no longer commit."""

    def __init__(self, settings: KafkaSettings, group_id: str, topic_names: Sequence[str],
                 on_assigned: RebalanceCallback, on_revoked: ReleaseCallback,
                 on_lost: RebalanceCallback | None = None, on_committed: Callable[[Offsets], None] | None = None,
                 release_hold_s: float = 10.0, **config: Any) -> None:
        self._thread = ClientThread(f"kafka-{group_id}", _mapped)
        self._on_committed = on_committed
        self._topics = list(topic_names)
        self._listener = _Listener(on_assigned, on_revoked, on_lost=on_lost, hold_s=release_hold_s)
        self._consumer: KafkaConsumer | None = None
        self._config = _group_config(settings, group_id, config)
        self._metadata_fetched = 0.0
        self._unsettled_since: float | None = None

    async def start(self) -> list[str]:
        """Create the consumer and subscribe; returns the topics whose partitions are not known yet."""
        return await self._thread.call("cannot create the consumer", self._create)

    def _create(self) -> list[str]:
        self._consumer = MemberConsumer(**self._config)
        self._consumer.on_committed = self._on_committed
        self._listener.manager = self._consumer._manager
        missing = learn_partitions(self._consumer, self._topics)
        self._consumer.subscribe(self._topics, listener=self._listener)
        return missing

    def membership(self) -> Membership:
        return membership_of(self._consumer)

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        def poll() -> list[Record]:
            assert self._consumer is not None
            self._watch_missing_topics(self._consumer)
            self._start_over_if_stuck(self._consumer)
            return _records(self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records))
        return await self._thread.call("poll failed", poll)

    def _watch_missing_topics(self, consumer: KafkaConsumer) -> None:
        """While this member holds nothing, fetch the metadata every few seconds: kafka-python
        refreshes it only every metadata_max_age_ms (5 minutes), and a group leader that assigned
        before its topic existed rejoins only once its metadata shows the topic's partitions (seen:
        a firer started before its topic idled after it was made). A member with partitions skips it."""
        if consumer.assignment():
            return
        now = time.monotonic()
        if now - self._metadata_fetched >= MISSING_TOPIC_REFRESH_S:
            self._metadata_fetched = now
            consumer.topics()

    def _start_over_if_stuck(self, consumer: MemberConsumer) -> None:
        """A member that holds nothing and has not been a stable group member for several session
        timeouts is stuck in a join that will not complete (seen under load after the coordinator
        moved: the broker had forgotten the member, which never learned it). Holding nothing, it
        loses nothing by starting over with a new consumer, which joins afresh."""
        if consumer.assignment() or consumer._coordinator.state is MemberState.STABLE:
            self._unsettled_since = None
            return
        now = time.monotonic()
        if self._unsettled_since is None:
            self._unsettled_since = now
            return
        stuck_s = now - self._unsettled_since
        if stuck_s < STUCK_SESSIONS * consumer.config["session_timeout_ms"] / 1000:
            return
        log.warning("no group membership for several session timeouts while holding nothing: starting over",
                    extra={"fields": {"stuck_s": round(stuck_s, 1)}})
        consumer.close(autocommit=False, timeout_ms=2000)
        self._unsettled_since = None
        self._create()

    async def pause(self, pause: bool) -> None:
        """Pause (or resume) every assigned partition."""
        def apply() -> None:
            assert self._consumer is not None
            assigned = list(self._consumer.assignment())
            if pause:
                self._consumer.pause(*assigned)
            else:
                self._consumer.resume(*assigned)
        await self._thread.call("pause failed", apply)

    async def commit(self, offsets: Offsets) -> None:
        """Send the commit and await the broker's answer without waiting for the consumer thread.
        Raises ``CommitRejected`` when refused, whatever the reason (the caller retries with its
        latest offsets, or drops partitions it lost).

        Sent from the caller's thread, not the consumer thread: that thread spends most of its
        time inside a poll (up to its whole timeout while the partitions are paused), and a commit
        queued behind it landed 100-200 ms late, each of those milliseconds fires that a crash
        repeats. kafka-python 3 does not send a commit itself: ``_do_commit_offsets_async``
        (kafka/coordinator/consumer.py) hands the request to its IO thread through
        ``KafkaConnectionManager.call_soon``, documented thread-safe, and its futures take their
        callbacks under a lock (kafka/future.py). Not the public ``commit_async``: it first drains
        the completed-commit callbacks, which the consumer thread's poll does at the same time (a
        race on that deque: ``popleft`` from an empty one), and it would look the coordinator up,
        which this refuses instead."""
        if not offsets:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def answered(result: Any) -> None:
            error = result if isinstance(result, BaseException) else None
            loop.call_soon_threadsafe(settle, done, None, None if error is None else
                                      CommitRejected(_reason(error), str(error)))

        consumer = self._consumer
        if consumer is None or consumer._coordinator.coordinator_unknown():  # its future would be the lookup's
            raise CommitRejected("CoordinatorNotAvailableError", "the group coordinator is not known yet")
        with _mapped("commit failed"):
            future = consumer._coordinator._do_commit_offsets_async(
                {tp: OffsetAndMetadata(o, meta, -1) for tp, (o, meta) in offsets.items()})
        future.add_both(answered)
        await done

    async def close(self) -> None:
        await _close_on(self._thread, lambda: self._consumer)


async def _close_on(thread: ClientThread, consumer: Callable[[], KafkaConsumer | None]) -> None:
    """Close the consumer (no autocommit: the loops commit what they finished) on its own thread,
    then stop that thread."""
    def close() -> None:
        if (c := consumer()) is not None:
            c.close(autocommit=False)
    try:
        await thread.call("close failed", close)
    finally:
        thread.shutdown()


def _reason(error: BaseException) -> str:
    """A small fixed label: the error's class, or the broker error a CommitFailedError wraps."""
    cause = error.args[0] if isinstance(error, CommitFailedError) and error.args else None
    return type(cause).__name__ if isinstance(cause, KafkaError) else type(error).__name__


# --- partitions read without a group (the firer's park topic) --------------------------------------


class PartitionReader:
    """Partitions of one topic read by ``assign()``, no group and no commits: the owner decides
    which partitions it reads (the firer reads park partition p while it owns main partition p)
    and keeps the positions itself (in its main commits' metadata)."""

    def __init__(self, settings: KafkaSettings, name: str = "park", **config: Any) -> None:
        self._settings = settings
        self._thread = ClientThread(f"kafka-{name}", _mapped)
        self._config = config
        self._consumer: KafkaConsumer | None = None

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(**self._settings.client_kwargs(), group_id=None, enable_auto_commit=False,
                                           auto_offset_reset="earliest", **(NO_CLIENT_METRICS | self._config))
        return self._consumer

    async def ensure_topic(self, topic: str, like: str) -> None:
        """Create ``topic`` with as many partitions as ``like`` when missing (the consumer's
        principal needs Create on it where an authorizer runs, or deploy creates it); a topic
        with fewer partitions than ``like`` is refused: park partition p must exist for main p."""
        def ensure() -> None:
            consumer = self._client()
            consumer.topics()  # fresh metadata
            wanted = len(consumer.partitions_for_topic(like) or ())
            found = len(consumer.partitions_for_topic(topic) or ())
            if found and found < wanted:
                raise ConfigError("TRIGGER_MESSAGES_TOPIC", f"topic {topic!r} has {found} partitions, fewer than "
                                  f"the {wanted} of {like!r}: add partitions to it (kafka-topics.sh --alter)")
            if not wanted:  # our metadata does not show it yet: the caller retries
                raise UnknownTopicOrPartitionError(f"no partitions known for {like}")
            if found:
                return
            admin = KafkaAdminClient(**self._settings.client_kwargs())
            try:
                admin.create_topics({topic: {"num_partitions": wanted, "configs": {"cleanup.policy": "delete"}}},
                                    wait_for_metadata=True)
                log.info("created the park topic", extra={"fields": {"topic": topic, "partitions": wanted}})
            except TopicAlreadyExistsError:
                pass
            finally:
                admin.close()
            consumer.topics()
        await self._thread.call(f"cannot create or check the topic {topic}", ensure)

    async def add(self, positions: dict[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        """Read these partitions too, each from its offset (None: the beginning); returns their end offsets."""
        def add() -> dict[TopicPartition, int]:
            consumer = self._client()
            consumer.assign(sorted(set(consumer.assignment()) | set(positions)))
            self._seek(consumer, positions)
            return dict(consumer.end_offsets(list(positions)))
        return await self._thread.call("assigning park partitions failed", add)

    @staticmethod
    def _seek(consumer: KafkaConsumer, positions: dict[TopicPartition, int | None]) -> None:
        for tp, offset in positions.items():
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    async def seek(self, positions: dict[TopicPartition, int | None]) -> None:
        await self._thread.call("seek failed", lambda: self._seek(self._client(), positions))

    async def position(self, partition: TopicPartition) -> int:
        return await self._thread.call("position failed", lambda: self._client().position(partition))

    async def remove(self, partitions: list[TopicPartition]) -> None:
        def remove() -> None:
            consumer = self._client()
            consumer.assign(sorted(set(consumer.assignment()) - set(partitions)))
        await self._thread.call("unassigning park partitions failed", remove)

    async def pause(self, partitions: list[TopicPartition], pause: bool) -> None:
        def apply() -> None:
            consumer = self._client()
            owned = [tp for tp in partitions if tp in consumer.assignment()]
            if owned and pause:
                consumer.pause(*owned)
            elif owned:
                consumer.resume(*owned)
        await self._thread.call("pause failed", apply)

    async def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        def poll() -> list[Record]:
            consumer = self._client()
            if not consumer.assignment():
                return []
            return _records(consumer.poll(timeout_ms=timeout_ms, max_records=max_records))
        return await self._thread.call("poll failed", poll)

    async def close(self) -> None:
        await _close_on(self._thread, lambda: self._consumer)

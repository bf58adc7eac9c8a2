"""Web endpoints on the worker's port: health, readiness, metrics, person state."""

from __future__ import annotations

import hmac
from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View
from prometheus_client import generate_latest

from stream_app import observability
from stream_app.records import money, person_id_valid
from stream_app.rules import household
from stream_app.rules.common import from_us
from stream_app.rules.household import HouseholdState
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.runtime import Runtime


def is_ready(app: faust.App) -> bool:
    """Partitions assigned and tables recovered, no rebalance under way, and the broker there."""
    recovery = app.tables.recovery
    return (
        recovery.completed.is_set()
        and not app.rebalancing
        and not recovery.in_recovery
        and _group_coordinator_known(app)
    )


def _group_coordinator_known(app: faust.App) -> bool:
    """False once the consumer has marked its group coordinator dead (the broker is gone).

    aiokafka 0.14.0 internals (pinned like stream_app/faust_patches.py): the worker consumer's
    ``GroupCoordinator.coordinator_id`` is None from ``coordinator_dead()`` until the
    coordinator is found again. Anything else unexpected here says nothing either way.
    """
    try:
        consumer = app.consumer._thread._consumer
        return consumer is None or consumer._coordinator.coordinator_id is not None
    except AttributeError:
        return True


def medical_view(state: MedicalState, tiers_fen: tuple[int, ...]) -> dict[str, Any]:
    return {
        "rolling_self_pay": money(state.rolling_fen),
        "window_start": state.window_start.isoformat(),
        "window_end": state.window_end.isoformat(),
        "armed_tiers": [money(t) for t in tiers_fen if t not in state.disarmed_fen],
        "settlements": [
            {
                "event_id": e.event_id,
                "settled_at": from_us(e.settled_us, state.newest_offset_s).isoformat(),
                "service_on": e.service_on.isoformat(),
                "self_pay": money(e.self_pay_fen),
                "household_id": e.household_id,
                "reversed": e.reversed,
            }
            for e in state.entries
        ],
    }


def household_view(state: HouseholdState, tiers_fen: tuple[int, ...]) -> dict[str, Any]:
    """R7's window of a household: the R1 fields, its members and each member's settlements."""
    return {
        "rolling_self_pay": money(state.rolling_fen),
        "window_start": state.window_start.isoformat(),
        "window_end": state.window_end.isoformat(),
        "armed_tiers": [money(t) for t in tiers_fen if t not in state.disarmed_fen],
        "members": list(household.members(state)),
        "hardship_holder": household.hardship_holder(state),
        "settlements": [
            {
                "event_id": e.event_id,
                "person_id": e.person_id,
                "settled_at": from_us(e.settled_us, state.newest_offset_s).isoformat(),
                "service_on": e.service_on.isoformat(),
                "self_pay": money(e.self_pay_fen),
                "reversed": e.reversed,
            }
            for e in state.entries
        ],
    }


def status_view(state: StatusState) -> dict[str, Any]:
    death, cert = state.death, state.certification
    return {
        "death_in_force": death
        and {
            "event_id": death.event_id,
            "died_on": death.died_on.isoformat(),
            "registered_on": death.registered_on and death.registered_on.isoformat(),
        },
        "certification": cert
        and {
            "event_id": cert.event_id,
            "status": cert.status,
            "level": cert.level,
            "effective_on": cert.effective_on.isoformat(),
        },
        "programs": [
            {
                "program": ep.program,
                "active_since": ep.effective_on.isoformat(),
                "enrolled_by": ep.event_id,
                "monthly_amount": money(ep.monthly_amount_fen),
                "stops": [
                    {"stop_id": s.stop_id, "reason": s.reason, "effective_on": s.effective_on.isoformat()}
                    for s in ep.stops
                ],
            }
            for ep in state.episodes
        ],
    }


def register(
    app: faust.App, runtime: Runtime, routing_table: faust.Table, household_table: faust.Table
) -> None:
    settings = runtime.settings
    token = settings.api_token

    def refused(request: Request) -> dict[str, str] | None:
        """The same token rule for every state endpoint: unset, open; set, a bearer token."""
        if token is None:
            return None
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return None
        return {"error": "missing or wrong bearer token"}

    def owner_gone(view: View, what: str) -> Response:
        # The owner did not answer the forwarded request: typically a worker just killed,
        # still in the group until its session times out and its partitions move. Nothing
        # is wrong with the request: say so, and when to retry.
        response = view.json(
            {"error": "the worker that holds this key did not answer; retry shortly"}, status=503
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ready = is_ready(app)
            runtime.metrics.ready.set(1 if ready else 0)
            return self.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            runtime.metrics.ready.set(1 if is_ready(app) else 0)
            await observability.refresh(app, runtime)
            # aiohttp takes the charset apart from the media type (text/plain; version=0.0.4).
            response = self.bytes(generate_latest(runtime.metrics.registry), content_type="text/plain")
            response.charset = "utf-8"
            return response

    # Answered by the worker that owns the key's partition; others forward the request.
    @app.table_route(table=routing_table, match_info="person_id")
    async def local_person(view: View, request: Request, *, person_id: str) -> Response:
        medical = runtime.medical_state.get(person_id)
        status = runtime.status_state.get(person_id)
        if medical is None and status is None:
            return view.json({"error": "no state for this person"}, status=404)
        return view.json(
            {
                "person_id": person_id,
                "medical": medical and medical_view(medical, settings.rules.medical_tiers_fen),
                "status": status and status_view(status),
            }
        )

    @app.page("/persons/{person_id}")
    class Person(View):
        async def get(self, request: Request, person_id: str) -> Response:
            error = refused(request)
            if error is not None:
                return self.json(error, status=401)
            if not person_id_valid(person_id):
                return self.json({"error": "not a valid 18-character resident identity number"}, status=400)
            try:
                return await local_person(self, request, person_id=person_id)
            except (aiohttp.ClientError, OSError):  # OSError covers TimeoutError
                return owner_gone(self, "person")

    # A household's state lives with its key's partition of the household topic and table.
    @app.table_route(table=household_table, match_info="household_id")
    async def local_household(view: View, request: Request, *, household_id: str) -> Response:
        state = runtime.household_state.get(household_id)
        if state is None:
            return view.json({"error": "no state for this household"}, status=404)
        return view.json(
            {
                "household_id": household_id,
                "medical": household_view(state, settings.rules.household_tiers_fen),
            }
        )

    @app.page("/households/{household_id}")
    class Household(View):
        async def get(self, request: Request, household_id: str) -> Response:
            error = refused(request)
            if error is not None:
                return self.json(error, status=401)
            if not 1 <= len(household_id) <= 128:
                return self.json({"error": "a household_id has 1-128 characters"}, status=400)
            try:
                return await local_household(self, request, household_id=household_id)
            except (aiohttp.ClientError, OSError):  # OSError covers TimeoutError
                return owner_gone(self, "household")

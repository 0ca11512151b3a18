"""The dashboard's HTTP layer: sign-in with an API key, a session cookie, and the pages of each
role, as a FastAPI router the service mounts (`dashboard_router`) or an app of its own
(`create_dashboard_app`).

Only parsing, access checks and rendering live here; figures come from `raas.dashboard.data` and
`raas.dashboard.views`. Every page asks the session's principal first: a buyer sees its own
log's invoices and episodes, a vendor its own contracts, an auditor checkpoints and evidence.
Whatever is not the principal's answers 404, the same as what does not exist.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any, Final, Literal, Protocol
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from raas.audit.bundle import encode_bundle
from raas.audit.verify import verify_bundle, verify_consistency_proof
from raas.core.contract import Contract
from raas.core.disputes import DisputeError, check_filing, dispute_deadline, dispute_event
from raas.core.events import DisputeFiled, DisputeRuled
from raas.core.invoice import Invoice, invoice_file_stem, invoice_json
from raas.dashboard import views
from raas.dashboard.data import (
    EPISODES_PER_PAGE,
    ContractText,
    DashboardData,
    DashboardError,
    note_size_and_root,
)
from raas.ledger.evidence import export_bundle, export_consistency

Role = Literal["vendor", "buyer", "auditor"]
COOKIE: Final = "raas_session"
SESSION_SECONDS: Final = 8 * 3600
SESSIONS_MAX: Final = 10_000
# The source of the ledger events the dashboard writes (disputes and rulings).
EVENT_SOURCE: Final = "urn:raas:dashboard"
REASON_LENGTH_MAX: Final = 4_000
STATIC_FILES: Final = {"dashboard.css": "text/css", "tables.js": "text/javascript"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an API key speaks for: a tenant, in one role."""

    tenant: str
    role: Role
    name: str = ""
    key_id: str = ""


Authenticate = Callable[[str], Principal | None]
Clock = Callable[[], datetime]
Ruling = Literal["upheld", "rejected"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class DisputeDesk(Protocol):
    """Where the dashboard's disputes and rulings are written (checked by the page first: the
    invoice is the buyer's and bills the episode; the dispute is open and the vendor's).
    `file` raises `DisputeError` for a filing the contract refuses (one past its deadline)."""

    def file(
        self, principal: Principal, contract: Contract, invoice: Invoice, episode: str, reason: str
    ) -> None: ...

    def rule(
        self, principal: Principal, tenant: str, dispute_id: str, ruling: Ruling, note: str | None
    ) -> None: ...


class LedgerDisputeDesk:
    """Disputes appended to the buyer's log as they are (the dashboard served on its own),
    checked by the contract's rules as `raas dispute file` checks them (`check_filing`)."""

    def __init__(self, data: DashboardData, clock: Clock = utc_now) -> None:
        self.data = data
        self.clock = clock

    def file(
        self, principal: Principal, contract: Contract, invoice: Invoice, episode: str, reason: str
    ) -> None:
        dispute_id = f"dispute-{secrets.token_hex(8)}"
        filed = DisputeFiled(
            dispute_id=dispute_id,
            invoice_id=invoice.id,
            reason=reason,
            filed_by=principal.name or principal.tenant,
            episodes=(episode,),
        )
        filed_at = self.clock()
        check_filing(contract, invoice, filed, filed_at)
        self._append(invoice.buyer, filed, dispute_id, filed_at)

    def rule(
        self, principal: Principal, tenant: str, dispute_id: str, ruling: Ruling, note: str | None
    ) -> None:
        ruled = DisputeRuled(
            dispute_id=dispute_id,
            ruling=ruling,
            ruled_by=principal.name or principal.tenant,
            note=note,
        )
        self._append(tenant, ruled, f"{dispute_id}/ruling", self.clock())

    def _append(
        self, tenant: str, data: DisputeFiled | DisputeRuled, event_id: str, at: datetime
    ) -> None:
        event = dispute_event(data, id=event_id, source=EVENT_SOURCE, time=at, tenant=tenant)
        self.data.append(tenant, [event])


@dataclass(slots=True)
class _Session:
    api_key: str
    csrf: str
    expires: float


class Sessions:
    """Signed-in browsers: a random token in an HttpOnly cookie names the API key it signed in
    with; the key is checked again on every request, so a revoked key ends its sessions."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def open(self, api_key: str) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            if len(self._sessions) >= SESSIONS_MAX:
                expired = [key for key, item in self._sessions.items() if item.expires < now]
                for key in expired or list(self._sessions)[: SESSIONS_MAX // 10]:
                    del self._sessions[key]
            self._sessions[token] = _Session(
                api_key, secrets.token_urlsafe(16), now + SESSION_SECONDS
            )
        return token

    def get(self, token: str | None) -> _Session | None:
        if token is None:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and session.expires < time.monotonic():
                del self._sessions[token]
                return None
            return session

    def close(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)


@cache
def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("raas.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["quote"] = lambda text: quote(str(text), safe="")
    environment.filters["number"] = lambda value: f"{value:,}"
    return environment


@dataclass(frozen=True, slots=True)
class _Context:
    principal: Principal
    session: _Session
    token: str


def dashboard_router(
    data: DashboardData,
    authenticate: Authenticate,
    *,
    prefix: str = "/dashboard",
    desk: DisputeDesk | None = None,
    clock: Clock = utc_now,
) -> APIRouter:
    """The dashboard's routes under `prefix`, reading `data`, signing in through
    `authenticate` (an API key -> its principal, or None), filing disputes at `desk` (by
    default, straight into the ledger), telling the time by `clock`."""
    desk = LedgerDisputeDesk(data, clock) if desk is None else desk
    router = APIRouter(prefix=prefix, include_in_schema=False)
    sessions = Sessions()

    def render(
        request: Request, name: str, context: _Context | None, **values: Any
    ) -> HTMLResponse:
        html = (
            _templates()
            .get_template(name)
            .render(
                prefix=prefix,
                principal=None if context is None else context.principal,
                csrf="" if context is None else context.session.csrf,
                **values,
            )
        )
        return HTMLResponse(html)

    def signed_in(request: Request, *roles: Role) -> _Context:
        token = request.cookies.get(COOKIE)
        session = sessions.get(token)
        principal = None if session is None else authenticate(session.api_key)
        if session is None or principal is None or token is None:
            raise _SignIn()
        if roles and principal.role not in roles:
            raise HTTPException(404, "not found")
        return _Context(principal, session, token)

    def check_csrf(context: _Context, csrf: str) -> None:
        if not hmac.compare_digest(context.session.csrf, csrf):
            raise HTTPException(403, "the form is stale: reload the page and send it again")

    def visible_contracts(principal: Principal) -> list[ContractText]:
        # A buyer sees its own contracts; a vendor or an auditor those its tenant is a party
        # to (a vendor tenant sees all its buyers; a key scoped to one buyer's log, that one).
        return [
            item
            for item in data.contracts
            if principal.tenant == item.contract.buyer
            or (principal.role != "buyer" and principal.tenant == item.contract.vendor)
        ]

    def readable_invoice(principal: Principal, invoice_id: str, buyer: str | None) -> Invoice:
        """The invoice issued to `buyer` (default: the principal's own tenant) under this id,
        if the principal may read it; 404 otherwise. Ids repeat across buyers, so a page names
        whose invoice it shows."""
        try:
            invoice = data.invoice(principal.tenant if buyer is None else buyer, invoice_id)
        except DashboardError:
            raise HTTPException(404, "not found") from None
        parties = (invoice.buyer,) if principal.role == "buyer" else (invoice.buyer, invoice.vendor)
        if principal.tenant not in parties:
            raise HTTPException(404, "not found")
        return invoice

    def contract_of(
        principal: Principal, name: str, version: int | None, buyer: str
    ) -> ContractText:
        for item in visible_contracts(principal):
            if (
                item.contract.contract == name
                and version in (None, item.contract.version)
                and buyer == item.contract.buyer
            ):
                return item
        raise HTTPException(404, "not found")

    def buyer_of(principal: Principal, name: str, buyer: str | None) -> str | list[str]:
        """Whose contract `name` a page shows: the buyer named, if the principal sees its
        contract of that name (404 otherwise); else the principal's own tenant when it is one
        of those buyers, else the only one. Names repeat across buyers, so when several are
        left they are returned, for the page to ask rather than pick one."""
        buyers = sorted(
            {
                item.contract.buyer
                for item in visible_contracts(principal)
                if item.contract.contract == name
            }
        )
        if buyer is not None:
            if buyer not in buyers:
                raise HTTPException(404, "not found")
            return buyer
        if principal.tenant in buyers:
            return principal.tenant
        if not buyers:
            raise HTTPException(404, "not found")
        return buyers[0] if len(buyers) == 1 else buyers

    def choose_buyer(
        request: Request, context: _Context, name: str, links: list[tuple[str, str]]
    ) -> HTMLResponse:
        """The page that asks which buyer's contract `name` is meant: (buyer, url) each."""
        page = render(
            request,
            "choose_buyer.html",
            context,
            contract=name,
            links=links,
            title=f"{name}: which buyer?",
        )
        page.status_code = 300  # Multiple Choices: the links are the choices
        return page

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        kind = STATIC_FILES.get(name)
        if kind is None:
            raise HTTPException(404, "not found")
        body = resources.files("raas.dashboard").joinpath("static", name).read_bytes()
        return Response(body, media_type=kind, headers={"Cache-Control": "max-age=3600"})

    @router.get("/sign-in", response_class=HTMLResponse)
    def sign_in_form(request: Request) -> HTMLResponse:
        return render(request, "sign_in.html", None, error="")

    @router.post("/sign-in")
    def sign_in(request: Request, api_key: Annotated[str, Form()] = "") -> Response:
        principal = authenticate(api_key.strip()) if api_key.strip() else None
        if principal is None or principal.role not in ("vendor", "buyer", "auditor"):
            refused = render(
                request,
                "sign_in.html",
                None,
                error="That key is not valid for the dashboard: use a vendor, buyer or "
                "auditor key.",
            )
            refused.status_code = 401
            return refused
        token = sessions.open(api_key.strip())
        response = RedirectResponse(f"{prefix}/", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_SECONDS,
            path=prefix,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/sign-out")
    def sign_out(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
        context = signed_in(request)
        check_csrf(context, csrf)
        sessions.close(context.token)
        response = RedirectResponse(f"{prefix}/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path=prefix)
        return response

    @router.get("/")
    def home(request: Request) -> Response:
        context = signed_in(request)
        target = {"vendor": "vendor", "buyer": "invoices", "auditor": "audit"}
        return RedirectResponse(f"{prefix}/{target[context.principal.role]}", status_code=303)

    def vendor_url(contract: str, buyer: str) -> str:
        """The vendor's overview of one buyer's contract of this name."""
        return f"{prefix}/vendor?contract={quote(contract, safe='')}&buyer={quote(buyer, safe='')}"

    @router.get("/vendor", response_class=HTMLResponse)
    def vendor(
        request: Request, contract: str | None = None, buyer: str | None = None
    ) -> HTMLResponse:
        context = signed_in(request, "vendor")
        principal = context.principal
        contracts = visible_contracts(principal)
        if contract is not None:
            picked = buyer_of(principal, contract, buyer)
            if isinstance(picked, list):
                return choose_buyer(
                    request,
                    context,
                    contract,
                    [(name, vendor_url(contract, name)) for name in picked],
                )
            contracts_shown = [
                item
                for item in contracts
                if item.contract.contract == contract and item.contract.buyer == picked
            ]
        elif buyer is not None:
            contracts_shown = [item for item in contracts if item.contract.buyer == buyer][:1]
            if not contracts_shown:
                raise HTTPException(404, "not found")
        else:
            contracts_shown = contracts[:1]
        pages = [
            views.vendor_page(
                data.contract_figures(item),
                data.period_costs(item),
                data.review_queue(item),
                data.disputes(item),
            )
            for item in contracts_shown
        ]
        # One choice per buyer's contract of a name (its versions are shown together).
        choices = list(
            dict.fromkeys((item.contract.contract, item.contract.buyer) for item in contracts)
        )
        shown = (
            (contracts_shown[0].contract.contract, contracts_shown[0].contract.buyer)
            if contracts_shown
            else None
        )
        return render(
            request,
            "vendor.html",
            context,
            pages=pages,
            choices=[
                (name, buyer, vendor_url(name, buyer), (name, buyer) == shown)
                for name, buyer in choices
            ],
            title="Outcomes",
        )

    @router.get("/invoices", response_class=HTMLResponse)
    def invoices(request: Request) -> HTMLResponse:
        context = signed_in(request)
        principal = context.principal
        tenants = {item.contract.buyer for item in visible_contracts(principal)}
        if principal.role == "buyer":
            tenants.add(principal.tenant)
        rows = []
        for tenant in sorted(tenants):
            for invoice_id in data.invoice_ids(tenant):
                invoice = data.invoice(tenant, invoice_id)
                parties = (
                    (invoice.buyer,)
                    if principal.role == "buyer"
                    else (invoice.buyer, invoice.vendor)
                )
                if principal.tenant in parties:
                    rows.append(invoice)
        rows.sort(key=lambda invoice: (invoice.period_start, invoice.id), reverse=True)
        return render(request, "invoices.html", context, invoices=rows, title="Invoices")

    @router.get("/invoices/{invoice_id}", response_class=HTMLResponse)
    def invoice_page(request: Request, invoice_id: str, buyer: str | None = None) -> HTMLResponse:
        context = signed_in(request)
        invoice = readable_invoice(context.principal, invoice_id, buyer)
        return render(
            request, "invoice.html", context, invoice=invoice, title=f"Invoice {invoice.id}"
        )

    @router.get("/invoices/{invoice_id}/download/{file_format}")
    def invoice_download(
        request: Request, invoice_id: str, file_format: str, buyer: str | None = None
    ) -> Response:
        context = signed_in(request)
        invoice = readable_invoice(context.principal, invoice_id, buyer)
        filename = f"{invoice_file_stem(invoice)}.{file_format}"
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        if file_format == "json":
            return Response(
                invoice_json(invoice), media_type="application/json", headers=disposition
            )
        if file_format == "csv":
            return Response(views.invoice_csv(invoice), media_type="text/csv", headers=disposition)
        if file_format == "pdf":
            return Response(
                views.invoice_pdf(invoice), media_type="application/pdf", headers=disposition
            )
        raise HTTPException(404, "not found")

    @router.get("/invoices/{invoice_id}/lines/{number}", response_class=HTMLResponse)
    def invoice_line(
        request: Request, invoice_id: str, number: int, page: int = 1, buyer: str | None = None
    ) -> HTMLResponse:
        context = signed_in(request, "vendor", "buyer")
        invoice = readable_invoice(context.principal, invoice_id, buyer)
        if not 1 <= number <= len(invoice.lines):
            raise HTTPException(404, "not found")
        line = invoice.lines[number - 1]
        pages = max(1, -(-len(line.episodes) // EPISODES_PER_PAGE))
        page = min(max(page, 1), pages)
        shown = line.episodes[(page - 1) * EPISODES_PER_PAGE : page * EPISODES_PER_PAGE]
        item = contract_of(
            context.principal, invoice.contract, invoice.contract_version, invoice.buyer
        )
        return render(
            request,
            "line.html",
            context,
            invoice=invoice,
            line=line,
            number=number,
            rows=data.episode_rows(item, shown),
            page=page,
            pages=pages,
            local_time=views.local_time,
            title=f"{invoice.id} line {number}",
        )

    @router.get("/episode", response_class=HTMLResponse)
    def episode(
        request: Request,
        contract: str,
        id: str,
        version: int | None = None,
        invoice: str | None = None,
        buyer: str | None = None,
    ) -> HTMLResponse:
        context = signed_in(request, "vendor", "buyer")
        picked = buyer_of(context.principal, contract, buyer)
        if isinstance(picked, list):
            return choose_buyer(
                request,
                context,
                contract,
                [(name, episode_url(request, name)) for name in picked],
            )
        item = contract_of(context.principal, contract, version, picked)
        return episode_page(request, context, item, id, invoice)

    def episode_url(request: Request, buyer: str) -> str:
        """The episode page asked for, of this buyer's contract."""
        url = request.url.include_query_params(buyer=buyer)
        return f"{url.path}?{url.query}"

    def episode_page(
        request: Request,
        context: _Context,
        item: ContractText,
        id: str,
        invoice: str | None,
        *,
        refused: str = "",
        reason: str = "",
    ) -> HTMLResponse:
        """An episode, with the dispute form when its buyer may still file one (`refused`
        says why a filing just sent was not taken, `reason` is that filing's text)."""
        try:
            detail = data.episode(item, id)
        except DashboardError:
            raise HTTPException(404, "not found") from None
        zone = item.contract.time_zone
        billed_on = None
        if invoice is not None:
            issued = readable_invoice(context.principal, invoice, item.contract.buyer)
            numbers = [
                number for number, line in enumerate(issued.lines, start=1) if id in line.episodes
            ]
            billed_on = (issued, numbers[0]) if numbers else None
        disputes = [dispute for dispute in data.disputes(item) if id in dispute.episodes]
        deadline = None if billed_on is None else dispute_deadline(item.contract, billed_on[0])
        page = render(
            request,
            "episode.html",
            context,
            item=item,
            detail=detail,
            transcript=views.transcript(detail, zone),
            events=views.event_rows(detail, zone),
            local_time=views.local_time,
            billed_on=billed_on,
            disputes=disputes,
            deadline=deadline,
            deadline_passed=deadline is not None and clock() >= deadline,
            can_dispute=context.principal.role == "buyer"
            and billed_on is not None
            and not any(dispute.status == "open" for dispute in disputes),
            refused=refused,
            reason=reason,
            title=f"Episode {id}",
        )
        if refused:
            page.status_code = 409
        return page

    @router.post("/disputes")
    def file_dispute(
        request: Request,
        csrf: Annotated[str, Form()],
        invoice: Annotated[str, Form()],
        episode: Annotated[str, Form()],
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        context = signed_in(request, "buyer")
        check_csrf(context, csrf)
        principal = context.principal
        issued = readable_invoice(principal, invoice, None)  # a buyer files on its own
        if not any(episode in line.episodes for line in issued.lines):
            raise HTTPException(404, "not found")
        item = contract_of(principal, issued.contract, issued.contract_version, issued.buyer)
        reason = reason.strip()
        if not reason or len(reason) > REASON_LENGTH_MAX:
            raise HTTPException(
                422, f"say why the episode is disputed, in 1 to {REASON_LENGTH_MAX} characters"
            )
        try:
            desk.file(principal, item.contract, issued, episode, reason)
        except DisputeError as error:
            return episode_page(
                request, context, item, episode, issued.id, refused=str(error), reason=reason
            )
        data.refresh(issued.buyer)
        return RedirectResponse(
            f"{prefix}/episode?contract={quote(item.contract.contract)}"
            f"&version={item.contract.version}&buyer={quote(issued.buyer, safe='')}"
            f"&invoice={quote(issued.id)}&id={quote(episode)}",
            status_code=303,
        )

    @router.post("/disputes/{dispute_id}/ruling")
    def rule_on_dispute(
        request: Request,
        dispute_id: str,
        csrf: Annotated[str, Form()],
        contract: Annotated[str, Form()],
        ruling: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
        buyer: Annotated[str | None, Form()] = None,
    ) -> Response:
        context = signed_in(request, "vendor")
        check_csrf(context, csrf)
        principal = context.principal
        picked = buyer_of(principal, contract, buyer)
        if isinstance(picked, list):
            raise HTTPException(
                422,
                f"say whose contract {contract!r} the dispute is under: buyer is one of "
                + ", ".join(picked),
            )
        item = contract_of(principal, contract, None, picked)
        found = [dispute for dispute in data.disputes(item) if dispute.dispute_id == dispute_id]
        if not found:
            raise HTTPException(404, "not found")
        if found[0].status != "open":
            raise HTTPException(409, f"dispute {dispute_id} was already ruled {found[0].status}")
        if ruling not in ("upheld", "rejected"):
            raise HTTPException(422, "a ruling is `upheld` or `rejected`")
        tenant = item.contract.buyer
        verdict: Ruling = "upheld" if ruling == "upheld" else "rejected"
        desk.rule(principal, tenant, dispute_id, verdict, note.strip()[:REASON_LENGTH_MAX] or None)
        data.refresh(tenant)
        return RedirectResponse(vendor_url(item.contract.contract, tenant), status_code=303)

    @router.get("/audit", response_class=HTMLResponse)
    def audit(request: Request) -> HTMLResponse:
        context = signed_in(request, "auditor", "vendor")
        principal = context.principal
        tenants = sorted({item.contract.buyer for item in visible_contracts(principal)})
        logs = []
        for tenant in tenants:
            checkpoints = data.checkpoints(tenant)
            rows = []
            previous: tuple[int, str] | None = None
            for size, note in checkpoints.notes:
                _size, root = note_size_and_root(note)
                consistency = ""
                if previous is not None:
                    proof = export_consistency(data.ledger, tenant, previous[0], size)
                    report = verify_consistency_proof(
                        proof.old, proof.new, proof.proof, data.verifier_keys
                    )
                    consistency = (
                        f"extends size {previous[0]:,}"
                        if report.proven
                        else "; ".join(finding.reason for finding in report.findings)
                    )
                rows.append(
                    {
                        "size": size,
                        "root": root.hex(),
                        "signature": data.signature_status(note),
                        "consistency": consistency,
                        "note": note,
                    }
                )
                previous = (size, note)
            invoice_rows = [
                data.invoice(tenant, invoice_id) for invoice_id in data.invoice_ids(tenant)
            ]
            logs.append({"tenant": tenant, "checkpoints": rows, "invoices": invoice_rows})
        return render(request, "audit.html", context, logs=logs, title="Audit")

    def auditable_invoice(
        principal: Principal, invoice_id: str, buyer: str | None
    ) -> tuple[Invoice, ContractText]:
        try:
            invoice = data.invoice(principal.tenant if buyer is None else buyer, invoice_id)
        except DashboardError:
            raise HTTPException(404, "not found") from None
        if principal.tenant not in (invoice.buyer, invoice.vendor):
            raise HTTPException(404, "not found")
        try:
            item = data.contract(invoice.contract, invoice.contract_version, buyer=invoice.buyer)
        except DashboardError:
            raise HTTPException(404, "not found") from None
        return invoice, item

    @router.get("/audit/bundle/{invoice_id}")
    def bundle(request: Request, invoice_id: str, buyer: str | None = None) -> Response:
        context = signed_in(request, "auditor", "vendor")
        invoice, item = auditable_invoice(context.principal, invoice_id, buyer)
        body = encode_bundle(export_bundle(data.ledger, invoice.id, item.text, redact=True))
        return Response(
            body,
            media_type="application/json",
            # Named as the invoice's files are, buyer included: ids repeat across buyers.
            headers={
                "Content-Disposition": (
                    f'attachment; filename="bundle-{invoice_file_stem(invoice)}.json"'
                )
            },
        )

    @router.get("/audit/verify/{invoice_id}", response_class=HTMLResponse)
    def verify(request: Request, invoice_id: str, buyer: str | None = None) -> HTMLResponse:
        context = signed_in(request, "auditor", "vendor")
        invoice, item = auditable_invoice(context.principal, invoice_id, buyer)
        bundle = export_bundle(data.ledger, invoice.id, item.text, redact=True)
        report = verify_bundle(bundle, data.verifier_keys, contract_text=item.text)
        return render(
            request,
            "verify.html",
            context,
            invoice=invoice,
            report=report,
            keys=[key.name for key in data.verifier_keys],
            title=f"Verify {invoice.id}",
        )

    return router


def may_read(principal: Principal, invoice: Invoice) -> bool:
    """A buyer reads its own invoices; a vendor or auditor those its tenant is a party to."""
    if principal.role == "buyer":
        return principal.tenant == invoice.buyer
    return principal.tenant in (invoice.buyer, invoice.vendor)


class _SignIn(Exception):
    """Raised by a page when no valid session is there; answered by a redirect to sign in."""


def install(
    app: FastAPI,
    data: DashboardData,
    authenticate: Authenticate,
    *,
    prefix: str = "/dashboard",
    desk: DisputeDesk | None = None,
    clock: Clock = utc_now,
) -> None:
    """Mount the dashboard on `app`: its routes, and the redirect to sign in."""
    app.include_router(dashboard_router(data, authenticate, prefix=prefix, desk=desk, clock=clock))

    @app.exception_handler(_SignIn)
    async def to_sign_in(request: Request, error: _SignIn) -> Response:
        return RedirectResponse(f"{prefix}/sign-in", status_code=303)


def create_dashboard_app(
    data: DashboardData, authenticate: Authenticate, clock: Clock = utc_now
) -> FastAPI:
    """The dashboard alone, for when it is served without the API."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install(app, data, authenticate, clock=clock)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/dashboard/", status_code=303)

    return app


__all__ = ["Authenticate", "Principal", "create_dashboard_app", "dashboard_router", "install"]

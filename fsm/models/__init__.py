"""Pydantic models of every payload: the single source of truth for ``schemas/``.

:data:`SCHEMA_MODELS` maps each schema's relative id (``vouchers/redeem-voucher.request``)
to its model; ``python -m fsm.models._export`` writes the JSON Schemas from it and a
test fails when the committed files drift.
"""

from __future__ import annotations

from pydantic import BaseModel

from fsm.models import auth, common, contexts, finance, sessions, vouchers
from fsm.models.exchange import ExchangeRecord
from fsm.models.report import ReportDocument

__all__ = ["SCHEMA_MODELS", "ExchangeRecord", "ReportDocument"]

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "auth/sign-in.request": auth.SignInRequest,
    "auth/sign-in.response": auth.SignInResponse,
    "auth/sign-up.request": auth.SignUpRequest,
    "auth/sign-up.response": auth.SignUpResponse,
    "auth/get-challenge.response": auth.ChallengeResponse,
    "contexts/context-open.request": contexts.ContextOpenRequest,
    "contexts/context": contexts.Context,
    "contexts/context-list": contexts.ContextList,
    "contexts/context-close.request": contexts.ContextCloseRequest,
    "contexts/context-list.query": contexts.ContextListQuery,
    "vouchers/reserve-voucher.request": vouchers.ReserveVoucherRequest,
    "vouchers/reserved-voucher": vouchers.ReservedVoucher,
    "vouchers/redeem-voucher.request": vouchers.RedeemVoucherRequest,
    "vouchers/redeem-voucher.response": vouchers.RedeemVoucherResponse,
    "vouchers/negotiate-voucher.request": vouchers.NegotiateVoucherRequest,
    "vouchers/negotiate-voucher.response": vouchers.NegotiateVoucherResponse,
    "vouchers/resolve-voucher.request": vouchers.ResolveVoucherRequest,
    "vouchers/resolve-voucher.response": vouchers.ResolveVoucherResponse,
    "vouchers/sign-voucher.request": vouchers.SignVoucherRequest,
    "vouchers/voucher": vouchers.Voucher,
    "vouchers/voucher-list": vouchers.VoucherList,
    "vouchers/voucher-list.query": vouchers.VoucherListQuery,
    "vouchers/interop.query": vouchers.InteropQuery,
    "vouchers/interop-init.request": vouchers.InteropInitRequest,
    "vouchers/interop-init.response": vouchers.InteropInitResponse,
    "vouchers/interop-info.response": vouchers.InteropInfoResponse,
    "sessions/session-open.request": sessions.SessionOpenRequest,
    "sessions/session-open.response": sessions.SessionOpenResponse,
    "sessions/session": sessions.Session,
    "finance/networks": finance.NetworkList,
    "finance/currencies": finance.CurrencyList,
    "finance/networks.query": finance.NetworksQuery,
    "finance/currencies.query": finance.CurrenciesQuery,
    "finance/convert.request": finance.ConvertRequest,
    "finance/convert.response": finance.ConvertResponse,
    "common/empty-object": common.EmptyObject,
    "common/error": common.ErrorEnvelope,
    "exchange": ExchangeRecord,
    "report": ReportDocument,
}

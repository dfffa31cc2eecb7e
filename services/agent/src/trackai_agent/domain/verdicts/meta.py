"""The ``validate_meta_token`` verdict: a Meta token's validity, scopes and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trackai_agent.domain.model import (
    PixelRead,
    TokenDebug,
    ToolResult,
)
from trackai_agent.domain.verdicts.text import day_month, upper_first

REQUIRED_SCOPES = ("ads_management", "business_management")
EXPIRY_WARNING_DAYS = 7
SUBCODE_EXPIRED = 463
SUBCODE_INVALIDATED = 460
#: Instructions for a new token (not a credential).
HOW_TO_RENEW = (
    "gere um novo token no Meta Business Suite em Configurações do negócio → Usuários do sistema "
    "→ Gerar novo token (app {app}) com as permissões ads_management e business_management, e "
    'cole em Track AI → Configuração → Meta → campo "Token de acesso"'
)


# --- validate_meta_token ------------------------------------------------------------------------
def meta_token_verdict(  # noqa: PLR0911 - one answer per failure Meta distinguishes
    debug: TokenDebug,
    pixel: PixelRead | None,
    *,
    pixel_id: str,
    expected_app_id: str,
    now: datetime,
) -> ToolResult:
    """Expired, invalidated, unreadable, other app, missing scope, pixel out of reach, or valid."""
    app = debug.application or debug.app_id or "do Track AI"
    new_token = HOW_TO_RENEW.format(app=app)
    expires = datetime.fromtimestamp(debug.expires_at, UTC) if debug.expires_at else None
    details: dict[str, object] = {
        "app_id": debug.app_id,
        "type": debug.type,
        "scopes": list(debug.scopes),
        "expires_at": expires.isoformat() if expires else None,
        "pixel_id": pixel_id,
    }
    if not debug.is_valid:
        if debug.error_subcode == SUBCODE_EXPIRED or "expired" in debug.error_message:
            when = f" em {day_month(expires)}" if expires else ""
            return ToolResult(
                "error",
                f"O token do Meta expirou{when}.",
                upper_first(new_token) + ".",
                {**details, "reason": "expired"},
            )
        if debug.error_subcode == SUBCODE_INVALIDATED:
            return ToolResult(
                "error",
                "O token do Meta foi invalidado: a senha do usuário mudou ou o Meta encerrou a "
                "sessão por segurança.",
                upper_first(new_token) + " (prefira um usuário do sistema, que não expira).",
                {**details, "reason": "invalidated"},
            )
        return ToolResult(
            "error",
            "O valor salvo como token do Meta não é um token de acesso (o Meta não conseguiu "
            "lê-lo); talvez tenha sido colado o ID do pixel ou o segredo do app.",
            upper_first(new_token) + '; o token começa com "EAA".',
            {**details, "reason": "unparseable"},
        )
    if expected_app_id and debug.app_id != expected_app_id:
        return ToolResult(
            "error",
            f'O token pertence ao app "{app}" ({debug.app_id}), não ao app do Track AI '
            f"({expected_app_id}).",
            "No Meta Business Suite → Configurações do negócio → Usuários do sistema, gere o "
            f"token escolhendo o app {expected_app_id} na lista de apps, com as permissões "
            "ads_management e business_management, e cole em Track AI → Configuração → Meta → "
            'campo "Token de acesso".',
            {**details, "reason": "wrong_app", "expected_app_id": expected_app_id},
        )
    missing = [s for s in REQUIRED_SCOPES if s not in debug.scopes]
    if missing:
        return ToolResult(
            "error",
            f"O token não tem a permissão {' e '.join(missing)} (tem: "
            f"{', '.join(debug.scopes) or 'nenhuma'}).",
            "Gere um novo token em Configurações do negócio → Usuários do sistema → Gerar novo "
            f"token marcando {' e '.join(missing)} (além de ads_management e "
            'business_management), e cole em Track AI → Configuração → Meta → campo "Token de '
            'acesso".',
            {**details, "reason": "missing_scope", "missing_scopes": missing},
        )
    if pixel is not None and not pixel.readable:
        if pixel.error_code == 100:
            return ToolResult(
                "error",
                f"O token é válido, mas não enxerga o pixel {pixel_id}: ele pertence a outra "
                "empresa (Business Manager) ou o ID está errado.",
                f"Em Configurações do negócio → Fontes de dados → Conjuntos de dados (pixels), "
                f"confira o ID {pixel_id}; se ele é de outra empresa, peça ao dono para "
                "compartilhá-lo com a sua (Atribuir parceiros), e depois adicione o usuário do "
                "sistema ao pixel com controle total.",
                {**details, "reason": "pixel_not_accessible"},
            )
        return ToolResult(
            "error",
            f"O Meta recusou a leitura do pixel {pixel_id}: {pixel.error_message}",
            "Tente de novo em alguns minutos; se persistir, confira o pixel em Configurações do "
            "negócio → Fontes de dados.",
            {**details, "reason": "pixel_error", "error_code": pixel.error_code},
        )
    pixel_name = f'"{pixel.name}" ({pixel_id})' if pixel and pixel.name else pixel_id
    expiry_text = f"expira em {day_month(expires)}" if expires else "não expira"
    message = (
        f'Token válido: tipo {debug.type or "desconhecido"}, app "{app}", {expiry_text}, '
        f"permissões {', '.join(debug.scopes)}; o pixel {pixel_name} pode ser lido com ele."
    )
    if expires and expires - now < timedelta(days=EXPIRY_WARNING_DAYS):
        return ToolResult(
            "warning",
            message + f" Mas ele expira em {day_month(expires)}, em menos de "
            f"{EXPIRY_WARNING_DAYS} dias.",
            upper_first(new_token) + " (um token de usuário do sistema não expira).",
            {**details, "reason": "expires_soon"},
        )
    return ToolResult(
        "ok", message, "Nada a fazer no token; siga para o webhook do checkout.", details
    )

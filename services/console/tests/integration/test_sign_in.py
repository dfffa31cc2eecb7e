"""Sign-in, sessions, CSRF and the sign-in rate limit with the real app and PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from .conftest import PASSWORD, Console, build_accounts, build_app, csrf_of, sign_in

pytestmark = pytest.mark.integration


async def test_sign_in_sets_a_hardened_cookie_and_stores_only_its_hash(console: Console) -> None:
    await console.seller("Vendedora@Loja.com.br")
    async with console.client() as client:
        response = await sign_in(client, "vendedora@loja.com.br")
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
        session = next(c for c in cookies if c.startswith("trackai_session="))
        assert "HttpOnly" in session and "SameSite=lax" in session
        assert "Secure" not in session  # test environment over plain HTTP
        token = client.cookies["trackai_session"]
        stored = await console.pool.fetchval("SELECT id_hash FROM console.sessions")
        assert stored == hashlib.sha256(token.encode()).hexdigest() != token

        page = await client.get("/")
        assert page.status_code == 200
        assert "Visão geral" in page.text and "Vendedor" in page.text


async def test_cookies_are_secure_outside_the_local_sandbox(console: Console) -> None:
    await console.seller("a@loja.com.br")
    app = build_app(console.accounts, console.pool, secure_cookies=True)
    console.app = app
    # Over HTTPS, as a browser must be for Secure cookies to come back.
    async with console.client("https://console.test") as client:
        response = await sign_in(client, "a@loja.com.br")
        assert response.status_code == 303
    cookies = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    assert cookies and all("Secure" in c for c in cookies)


async def test_wrong_password_is_refused_with_a_portuguese_message(console: Console) -> None:
    await console.seller("a@loja.com.br")
    async with console.client() as client:
        response = await sign_in(client, "a@loja.com.br", "senha-errada-123")
        unknown = await sign_in(client, "ninguem@loja.com.br", PASSWORD)
    for refused in (response, unknown):
        assert refused.status_code == 400
        assert "E-mail ou senha incorretos." in refused.text
        assert "trackai_session" not in refused.headers.get("set-cookie", "")


async def test_sign_in_is_rate_limited_even_with_the_right_password(console: Console) -> None:
    await console.seller("a@loja.com.br")
    async with console.client() as client:
        for _ in range(3):  # the fixture's limit: 3 failures per e-mail
            assert (await sign_in(client, "a@loja.com.br", "errada-errada")).status_code == 400
        limited = await sign_in(client, "a@loja.com.br", PASSWORD)
        assert limited.status_code == 429
        assert "Muitas tentativas de entrada sem sucesso" in limited.text
        assert "aguarde 15 minutos" in limited.text
        # Another account from another address is not affected.
        await console.seller("b@loja.com.br")
        assert (await sign_in(client, "b@loja.com.br")).status_code == 303


async def test_sign_in_is_rate_limited_per_address_across_e_mails(console: Console) -> None:
    await console.seller("alvo@loja.com.br")
    async with console.client() as client:
        for i in range(10):  # the fixture's limit: 10 failures per address
            await sign_in(client, f"tentativa{i}@loja.com.br", "errada-errada")
        assert (await sign_in(client, "alvo@loja.com.br")).status_code == 429


async def test_state_changing_requests_need_the_csrf_token(console: Console) -> None:
    await console.seller("a@loja.com.br")
    async with console.client() as client:
        await csrf_of(client)
        no_token = await client.post("/entrar", data={"email": "a@loja.com.br", "senha": PASSWORD})
        assert no_token.status_code == 403
        forged = await client.post(
            "/entrar", data={"email": "a@loja.com.br", "senha": PASSWORD, "csrf_token": "x" * 43}
        )
        assert forged.status_code == 403
        assert (await sign_in(client, "a@loja.com.br")).status_code == 303

        # Signed in: a cross-site POST /sair (no header, no field) does not end the session.
        assert (await client.post("/sair")).status_code == 403
        assert (await client.get("/")).status_code == 200
        # htmx sends the token as a header; the value is the one the page carries.
        token = await csrf_of(client, "/")
        out = await client.post("/sair", headers={"X-CSRF-Token": token})
        assert out.status_code == 303 and out.headers["location"] == "/entrar"
        assert await console.pool.fetchval("SELECT count(*) FROM console.sessions") == 0


async def test_csrf_token_is_renewed_at_sign_in(console: Console) -> None:
    await console.seller("a@loja.com.br")
    async with console.client() as client:
        before = await csrf_of(client)
        await sign_in(client, "a@loja.com.br")
        assert client.cookies["trackai_csrf"] != before


async def test_pages_send_strangers_to_the_sign_in_page(console: Console) -> None:
    async with console.client() as client:
        page = await client.get("/")
        assert page.status_code == 303
        assert page.headers["location"] == "/entrar?proximo=/"
        fragment = await client.get("/", headers={"HX-Request": "true"})
        assert fragment.status_code == 401
        assert fragment.headers["HX-Redirect"] == "/entrar?proximo=/"
        client.cookies.set("trackai_session", "forjado")
        assert (await client.get("/")).status_code == 303


async def test_sign_in_never_redirects_to_another_site(console: Console) -> None:
    await console.seller("a@loja.com.br")
    async with console.client() as client:
        token = await csrf_of(client)
        response = await client.post(
            "/entrar",
            data={
                "email": "a@loja.com.br",
                "senha": PASSWORD,
                "csrf_token": token,
                "proximo": "//evil.example/x",
            },
        )
    assert response.headers["location"] == "/"


async def test_expired_session_is_refused(console: Console) -> None:
    await console.seller("a@loja.com.br")
    async with console.client() as client:
        await sign_in(client, "a@loja.com.br")
        await console.pool.execute("UPDATE console.sessions SET expires_at = now() - interval '1s'")
        assert (await client.get("/")).status_code == 303


async def test_disabling_a_user_ends_their_sessions(console: Console) -> None:
    await console.seller("a@loja.com.br")
    async with console.client() as client:
        await sign_in(client, "a@loja.com.br")
        await console.accounts.disable_user("A@loja.com.br")
        assert (await client.get("/")).status_code == 303
        again = await sign_in(client, "a@loja.com.br")
        assert again.status_code == 400 and "desativada" in again.text


async def test_password_link_works_once_and_ends_old_sessions(console: Console) -> None:
    tenant = uuid.uuid4()
    user, link = await console.accounts.create_user("nova@loja.com.br", "seller", tenant, None)
    assert link is not None and not user.has_password
    async with console.client() as client:
        assert (await sign_in(client, "nova@loja.com.br", "")).status_code == 400
        page = await client.get(f"/senha?token={link.token}")
        assert page.status_code == 200 and "Escolha sua senha" in page.text
        token = await csrf_of(client, f"/senha?token={link.token}")
        short = await client.post(
            "/senha",
            data={
                "token": link.token,
                "senha": "curta",
                "confirmacao": "curta",
                "csrf_token": token,
            },
        )
        assert short.status_code == 400 and "pelo menos 10 caracteres" in short.text
        differ = await client.post(
            "/senha",
            data={
                "token": link.token,
                "senha": "nova-senha-123",
                "confirmacao": "outra-senha-123",
                "csrf_token": token,
            },
        )
        assert differ.status_code == 400 and "não conferem" in differ.text
        done = await client.post(
            "/senha",
            data={
                "token": link.token,
                "senha": "nova-senha-123",
                "confirmacao": "nova-senha-123",
                "csrf_token": token,
            },
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/entrar?aviso=")
        assert (await sign_in(client, "nova@loja.com.br", "nova-senha-123")).status_code == 303

        # A reset link ends the sessions that exist (a thief's included) and works only once.
        reset = await console.accounts.password_link("nova@loja.com.br")
        replay = {
            "token": link.token,
            "senha": "mais-uma-senha-1",
            "confirmacao": "mais-uma-senha-1",
            "csrf_token": await csrf_of(client, "/"),
        }
        used = await client.post("/senha", data=replay)
        assert used.status_code == 400 and "já foi usado" in used.text
        await console.accounts.choose_password(reset.token, "mais-uma-senha-1")
        assert (await client.get("/")).status_code == 303
        assert (await client.get(f"/senha?token={reset.token}")).status_code == 404


async def test_expired_password_link_is_refused(console: Console) -> None:
    _, link = await console.accounts.create_user("a@loja.com.br", "seller", uuid.uuid4(), None)
    assert link is not None
    await console.pool.execute(
        "UPDATE console.password_resets SET expires_at = now() - interval '1s'"
    )
    async with console.client() as client:
        page = await client.get(f"/senha?token={link.token}")
    assert page.status_code == 404 and "expirou" in page.text


async def test_stored_rows_hold_no_plaintext_e_mail_or_token(console: Console) -> None:
    _, link = await console.accounts.create_user(
        "segredo@loja.com.br", "seller", uuid.uuid4(), None
    )
    assert link is not None
    rows = []
    for table in ("users", "password_resets", "login_attempts"):
        rows.extend(await console.pool.fetch(f"SELECT * FROM console.{table}"))
    dump = " ".join(str(tuple(r)) for r in rows)
    assert "segredo" not in dump and link.token not in dump


async def test_passwords_are_stored_as_argon2id(console: Console) -> None:
    await build_accounts(console.pool).create_user("op@trackai.dev", "operator", None, PASSWORD)
    stored = await console.pool.fetchval("SELECT password_hash FROM console.users")
    assert stored.startswith("$argon2id$")

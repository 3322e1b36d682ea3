// A real OpenID Connect provider (panva/oidc-provider, OpenID-certified) for dsmon's sign-in tests,
// set up to behave like Google: email, email_verified, hd and name inside the ID token, RS256, PKCE
// required, client_secret_post. Started by the Rust test harness:
//
//   node provider.mjs '<json settings>'
//
// settings: { "clients": [{ "client_id", "client_secret", "redirect_uris": [...] }] }
// It listens on 127.0.0.1 at an ephemeral port and prints one line `issuer=http://127.0.0.1:PORT`.
//
// Test accounts (log in by typing the email on /interaction/:uid):
//   alice@example.com    verified, hd example.com
//   bob@example.org      verified, no hd
//   carol@corp.example   verified, hd corp.example (a Workspace account)
//   mallory@corp.example verified, NO hd (an address of that domain outside the Workspace)
//   dave@example.org     verified, no hd
//   eve@example.org      email_verified false
//   stranger@other.org   verified
//   bob@example.org#2    verified bob@example.org too, but ANOTHER account (another sub): the same
//                        address at a second account, as when an address changes hands
//
// Test-only controls live HERE, never in dsmon: `POST /test/tamper` with a JSON body arms a one-shot
// change of the next ID token the token endpoint issues, re-signed with the provider's real key:
//   { "claims": {...} }   claims to overwrite ("exp_offset": seconds from now for exp)
//   { "bad_signature": true }  signed by a key the provider never published, under the real kid
//   { "rotate": true }    a NEW key (new kid) is published in the JWKS and signs this and later tokens
// `POST /test/mint` { "login", "aud", "key", "claims" } answers { "id_token" }: an ID token for the
// account `login` issued to `aud`, valid for 10 minutes, signed by
//   "key": "published" (default) the provider's first key;
//          "new"       a new key, published in the JWKS from now on (a rotation);
//          "unknown"   a key never published, under a kid of its own (`"kid"` or made up).
// `GET /test/counters` answers { "jwks": n }: how many times the JWKS has been fetched.
// `POST /test/refuse` { "login", "refused": true | false } suspends (or restores) an account, as a
// Workspace admin suspends a user at Google: its sign-ins, also through a session the provider
// already holds, end with `error=access_denied` at the client's redirect URI.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const settings = JSON.parse(process.argv[2] || '{}');

const ACCOUNTS = {
  'alice@example.com': { name: 'Alice Admin', email_verified: true, hd: 'example.com' },
  'bob@example.org': { name: 'Bob User', email_verified: true },
  'carol@corp.example': { name: 'Carol Corp', email_verified: true, hd: 'corp.example' },
  'mallory@corp.example': { name: 'Mallory', email_verified: true },
  'dave@example.org': { name: 'Dave', email_verified: true },
  'eve@example.org': { name: 'Eve Unverified', email_verified: false },
  'stranger@other.org': { name: 'Stranger', email_verified: true },
  'bob@example.org#2': { name: 'Bob Again', email_verified: true, email: 'bob@example.org' },
};
const subOf = (login) => `sub-${login.replace(/[^a-z0-9]/g, '-')}`;
const loginOf = Object.fromEntries(Object.keys(ACCOUNTS).map((e) => [subOf(e), e]));
const claimsOf = (login) => {
  const a = ACCOUNTS[login];
  const sub = subOf(login);
  return { sub, email: a.email || login, email_verified: a.email_verified, name: a.name, ...(a.hd ? { hd: a.hd } : {}) };
};

async function newKey(kid) {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const priv = { ...(await jose.exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  const pub = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { privateKey, priv, pub, kid };
}

const k1 = await newKey('k1');
const rogue = await newKey('k1'); // same kid, never published
let rotated = null; // the key published and used after a rotation
const minted = []; // keys published by /test/mint (key "new")
let tamper = null; // the armed one-shot change
const refused = new Set(); // suspended accounts (logins)
const counters = { jwks: 0 };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: (settings.clients || []).map((c) => ({
    application_type: 'native', // loopback redirect URIs on any port (RFC 8252 7.3)
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
    ...c,
  })),
  jwks: { keys: [k1.priv] },
  pkce: { required: () => true },
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub', 'hd'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: [randomUUID()] },
  async findAccount(ctx, sub) {
    const login = loginOf[sub];
    if (!login) return undefined;
    return {
      accountId: sub,
      async claims() {
        return claimsOf(login);
      },
    };
  },
});

// Rewrite the token endpoint's ID token when a tamper is armed; publish the rotated key.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/jwks' && ctx.body && Array.isArray(ctx.body.keys)) {
    counters.jwks += 1;
    ctx.body = { keys: [...ctx.body.keys, ...(rotated ? [rotated.pub] : []), ...minted.map((k) => k.pub)] };
  }
  if (ctx.path === '/token' && ctx.body && ctx.body.id_token && (tamper || rotated)) {
    const t = tamper || {};
    tamper = null;
    if (t.rotate && !rotated) rotated = await newKey(`k2-${Date.now()}`);
    const payload = jose.decodeJwt(ctx.body.id_token);
    const claims = { ...(t.claims || {}) };
    if ('exp_offset' in claims) {
      const now = Math.floor(Date.now() / 1000);
      claims.exp = now + claims.exp_offset;
      claims.iat = Math.min(payload.iat, claims.exp - 60);
      delete claims.exp_offset;
    }
    const key = t.bad_signature ? rogue : rotated || k1;
    ctx.body = {
      ...ctx.body,
      id_token: await new jose.SignJWT({ ...payload, ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
        .sign(key.privateKey),
    };
  }
});

const page = (body) => `<!doctype html><html><head><meta charset="utf-8"><title>Test provider sign-in</title></head><body>${body}</body></html>`;

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

const suspended = { error: 'access_denied', error_description: 'this account is suspended' };

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session, grantId } = details;
  if (session && refused.has(loginOf[session.accountId])) {
    await provider.interactionFinished(req, res, suspended, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'login') {
    if (action === 'login' && req.method === 'POST') {
      const email = new URLSearchParams(await readBody(req)).get('email')?.trim().toLowerCase() || '';
      if (refused.has(email)) {
        await provider.interactionFinished(req, res, suspended, { mergeWithLastSubmission: false });
        return;
      }
      if (!ACCOUNTS[email]) {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(page(`<p id="unknown">No such account: ${email.replace(/[<>&"]/g, '')}</p>`));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: subOf(email) } }, { mergeWithLastSubmission: false });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page(`<h1>Test provider</h1><form method="post" action="/interaction/${uid}/login">
      <label>Email <input id="email" name="email" type="email" autofocus></label>
      <button id="submit" type="submit">Sign in</button></form>`));
    return;
  }
  // Consent: granted at once (native clients are asked every time).
  const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const d = prompt.details;
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(?:\/(login))?$/);
    if (m) return await interaction(req, res, m[1], m[2]);
    if (url.pathname === '/test/counters') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(counters));
    }
    if (url.pathname === '/test/mint' && req.method === 'POST') {
      const m = JSON.parse((await readBody(req)) || '{}');
      let key = k1;
      if (m.key === 'new') {
        key = await newKey(`minted-${minted.length + 1}-${Date.now()}`);
        minted.push(key);
      } else if (m.key === 'unknown') {
        key = await newKey(m.kid || `unknown-${randomUUID()}`);
      }
      const now = Math.floor(Date.now() / 1000);
      const id_token = await new jose.SignJWT({ ...claimsOf(m.login), ...(m.claims || {}) })
        .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(m.aud)
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(key.privateKey);
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ id_token }));
    }
    if (url.pathname === '/test/refuse' && req.method === 'POST') {
      const r = JSON.parse((await readBody(req)) || '{}');
      if (r.refused === false) refused.delete(r.login);
      else refused.add(r.login);
      res.writeHead(204);
      return res.end();
    }
    if (url.pathname === '/test/tamper' && req.method === 'POST') {
      tamper = JSON.parse((await readBody(req)) || '{}');
      res.writeHead(204);
      return res.end();
    }
    return callback(req, res);
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`provider error: ${e.message}`);
  }
});

process.stdout.write(`issuer=${issuer}\n`);
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));

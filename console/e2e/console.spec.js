// Browser test of the isobox web console, run by e2e_test.go against the
// real authprovider and eventrelay: headless Debian Chromium driven by
// playwright-core (no browser download). Each step throws on a failed
// expectation; the process exits non-zero and prints the step.
'use strict';
const { chromium } = require('playwright-core');
const assert = require('node:assert/strict');

const env = (k) => { const v = process.env[k]; if (!v) throw new Error('missing env ' + k); return v; };
const BASE = env('CONSOLE_URL');            // http://127.0.0.1:port (authprovider admin)
const EVIL = env('EVIL_URL');               // another origin serving a cross-site form
const INGEST = env('INGEST_URL');           // eventrelay /v1/events
const PORTAL = env('PORTAL_AUTH');          // client_id:client_secret of the portal
const HOOK = env('HOOK_URL');               // the handler (fails until HOOK_URL/heal is called)
const SHOTS = env('SHOTS_DIR');
const ADMIN_PW = env('ADMIN_PASSWORD');
const VIEWER_PW = env('VIEWER_PASSWORD');
const DEVICE_CHANNEL = env('DEVICE_CHANNEL'); // the channel a relay board (e2e_test.go) listens on
const DEVICE_ID = env('DEVICE_ID'); // the name it gives itself (device=)
const SIG_KEY = env('SIGNATURE_KEY');          // eventrelay's push signature key: never on a page
// Markup in untrusted text: a delivery payload, a handler URL, a device name.
const XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>';

let step = '';
const t0 = Date.now();
function log(s) { step = s; console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`); }

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/console-${name}.png`, fullPage: true });
}

async function login(page, name, pw) {
  await page.goto(BASE + '/console/');
  assert.match(page.url(), /\/console\/login/);
  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', pw);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  assert.equal(new URL(page.url()).pathname, '/console/');
}

// reloadUntil reloads url until selector matches an element (the console
// is a black box here: polled with a deadline).
async function reloadUntil(page, url, selector, seconds = 30) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    await page.goto(url);
    if ((await page.locator(selector).count()) > 0) return;
    if (Date.now() > end) throw new Error(`${url} never showed ${selector}`);
    await page.waitForTimeout(300);
  }
}

async function ingest(clientID, event, id, url = HOOK + '/deal', title = '') {
  const item = {
    client_id: clientID,
    auth: { EVENT_SESSION: 7, LOCAL_USER: 1, application_token: 'apptoken-console' },
    additional: { sendAuth: true, sendRefreshToken: false, category: 'default' },
    query: { DOMAIN: 'portal.lan', QUERY_URL: url, QUERY_DATA: { event, event_handler_id: 3, data: { FIELDS: title ? { ID: id, TITLE: title } : { ID: id } }, ts: 1700000000 } },
  };
  const r = await fetch(INGEST, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + PORTAL }, body: JSON.stringify([item]) });
  const body = await r.text();
  assert.equal(r.status, 200, body);
  return JSON.parse(body).result.ids[0];
}

(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  const ctx = await browser.newContext({ viewport: { width: 1360, height: 860 }, locale: 'en-US' });
  const page = await ctx.newPage();
  let alerts = 0; // a script run from untrusted text would alert
  page.on('dialog', (d) => { if (d.type() === 'alert') alerts++; d.accept(); }); // the console's confirmations

  log('the login page, then log in as admin');
  await page.goto(BASE + '/console/login');
  await shot(page, 'login');
  await login(page, 'admin', ADMIN_PW);
  const cookie = (await ctx.cookies()).find((c) => c.name === 'isobox_console');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'session cookie: ' + JSON.stringify(cookie));

  log('create an app');
  await page.goto(BASE + '/console/apps');
  await page.fill('form[action="/console/apps"] input[name=name]', 'Deal export');
  await page.fill('form[action="/console/apps"] input[name=redirect_uri]', 'https://deals.lan/install');
  await page.fill('form[action="/console/apps"] input[name=scope]', 'crm,user');
  await page.fill('form[action="/console/apps"] input[name=access_ttl]', '30m');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/console/apps"] button[type=submit]')]);
  const clientID = (await page.textContent('.secret dd.mono')).trim();
  assert.match(clientID, /^local\./);
  assert.match((await page.textContent('.secret dd.select')).trim(), /^[A-Za-z0-9]{50}$/);
  await shot(page, 'apps');

  log('an event for the app fails at its handler and is dead-lettered');
  const id = await ingest(clientID, 'ONCRMDEALADD', 42);
  await reloadUntil(page, BASE + '/console/deliveries?app=' + encodeURIComponent(clientID), `tr:has(a[href="/console/deliveries/${id}"]) span.badge.bad`);
  await shot(page, 'deliveries');
  await page.click(`a[href="/console/deliveries/${id}"]`);
  const detail = await page.textContent('main');
  assert.match(detail, /HTTP 500/);
  assert.ok(detail.includes('data[FIELDS][ID]') && detail.includes('42'), 'the payload is not shown');
  assert.ok(!detail.includes('auth[access_token]'), 'the payload shows a token');
  assert.equal(await page.locator('td .badge.bad').count(), 2, 'two failed attempts');
  await shot(page, 'delivery');
  await page.goto(BASE + '/console/dlq');
  assert.ok((await page.textContent('main')).includes(id));
  await shot(page, 'dlq');

  log('the overview shows the dead letter');
  await page.goto(BASE + '/console/');
  assert.equal((await page.textContent('a.stat.alarm .value')).trim(), '1');
  await shot(page, 'overview');

  log('replaying everything needs the confirmation box');
  await page.goto(BASE + '/console/dlq');
  const all = page.locator('form.danger-zone');
  assert.equal(await all.locator('input[name=confirm]').getAttribute('required'), '');
  // Without the box ticked the server refuses too (the form's "required"
  // is only the browser's check).
  const unconfirmed = await page.evaluate(async () => {
    const csrf = document.querySelector('input[name=csrf]').value;
    const r = await fetch('/console/dlq/replay', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'scope=all&csrf=' + encodeURIComponent(csrf) });
    return r.status;
  });
  assert.equal(unconfirmed, 400);
  assert.ok((await page.textContent('main')).includes(id), 'the refused replay replayed');

  log('the handler is fixed; replay its dead letters; the event is delivered');
  assert.equal((await fetch(HOOK + '/heal', { method: 'POST' })).status, 200);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/console/dlq/replay"]:has(input[name=handler]) button')]);
  assert.match(await page.textContent('.flash.ok'), /Queued/);
  await reloadUntil(page, BASE + '/console/deliveries/' + id, 'h2 span.badge.ok');
  await page.goto(BASE + '/console/handlers');
  assert.match(await page.textContent('main'), /\d ms \/ \d+(\.\d)? ms/, 'no p50 / p99');
  await shot(page, 'handlers');

  log('pause and resume the handler');
  await Promise.all([page.waitForNavigation(), page.click('form[action$="/pause"] button')]);
  assert.match(await page.textContent('main'), /paused/);
  await Promise.all([page.waitForNavigation(), page.click('form[action$="/resume"] button')]);

  log('rotate the app\'s signing secret');
  await Promise.all([page.waitForNavigation(), page.click('form[action$="/rotate-secret"] button')]);
  assert.match((await page.textContent('.secret dd.select')).trim(), /^whsec_/);

  log('portals: the registered portal; approve a host');
  await page.goto(BASE + '/console/portals');
  assert.match(await page.textContent('main'), /portal\.lan/);
  await page.fill('form[action="/console/portals/allow"] input[name=host]', 'crm.example.local');
  await page.fill('form[action="/console/portals/allow"] input[name=note]', 'second office');
  await page.fill('form[action="/console/portals/allow"] input[name=ttl]', '72h');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/console/portals/allow"] button[type=submit]')]);
  assert.match(await page.textContent('main'), /crm\.example\.local/);
  await shot(page, 'portals');

  log('tokens: the delivery minted a token for the app; revoke them');
  await page.goto(BASE + '/console/tokens?app=' + encodeURIComponent(clientID));
  assert.ok((await page.locator('tbody tr:has(span.badge:text-is("access"))').count()) >= 1, 'no live access token of the app');
  await shot(page, 'tokens');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/console/tokens/revoke"].bar button')]);
  await page.goto(BASE + '/console/tokens?app=' + encodeURIComponent(clientID));
  assert.equal(await page.locator('tbody tr:has(span.badge:text-is("access"))').count(), 0, 'tokens left after revoking');

  log('audit log and settings');
  await page.goto(BASE + '/console/audit');
  const audit = await page.textContent('main');
  for (const a of ['app.create', 'dlq.replay', 'handler.pause', 'handler.resume', 'login', 'portal.allow', 'token.revoke-all', 'signing-secret.rotate']) assert.ok(audit.includes(a), 'audit lacks ' + a);
  // eventrelay's own entries (its CLI's dlq replay) are merged in; the console's relay changes appear once.
  const relayRows = await page.$$eval('tbody tr', rows => rows.filter(r => r.cells[2] && r.cells[2].textContent.trim() === 'eventrelay').map(r => r.cells[3].textContent.trim()));
  assert.ok(relayRows.length >= 1 && relayRows.every(s => s !== 'console'), 'merged relay rows: ' + JSON.stringify(relayRows));
  await shot(page, 'audit');
  await page.goto(BASE + '/console/settings');
  assert.match(await page.textContent('main'), /--access-ttl/);
  await shot(page, 'settings');

  log('untrusted markup is shown as text: a delivery payload, a handler URL');
  const xid = await ingest(clientID, 'ONCRMDEALUPDATE', 43, HOOK + '/deal?x=' + XSS, XSS);
  await reloadUntil(page, BASE + '/console/deliveries/' + xid, 'h2 span.badge');
  assert.ok((await page.textContent('main')).includes(XSS), 'the payload\'s markup is not shown literally');
  assert.equal(await page.locator('main img[src=x]').count(), 0, 'the payload became markup');
  await page.goto(BASE + '/console/handlers');
  assert.ok((await page.textContent('main')).includes('/deal?x=' + XSS), 'the handler URL is not shown literally');
  assert.equal(await page.locator('main img[src=x]').count(), 0, 'the handler URL became markup');

  log('push: channels online, a test message to the board');
  await reloadUntil(page, BASE + '/console/push', `#push-channels td:text-is("${DEVICE_CHANNEL}")`);
  await page.fill('#push-test input[name=channel]', DEVICE_CHANNEL);
  await page.fill('#push-test input[name=text]', 'hello board');
  await Promise.all([page.waitForNavigation(), page.click('#push-test button')]);
  assert.match(await page.textContent('.flash.ok'), /has 1 subscribers/);
  await shot(page, 'push');

  log('devices: the board by its name, with its address; names as text');
  await reloadUntil(page, BASE + '/console/devices', '#devices tr:has(span.badge.ok)');
  const row = page.locator('#devices tr:has(span.badge.ok)');
  assert.equal(await row.count(), 1, 'connected boards');
  const devText = await row.textContent();
  assert.ok(devText.includes(XSS) && devText.includes('frameBytes=2048') && devText.includes('p' + DEVICE_CHANNEL) && devText.includes('127.0.0.1'), 'device row: ' + devText);
  assert.equal(await row.locator('.device-id').textContent(), DEVICE_ID, 'the board\'s name');
  // A record whose name is markup (written into the bucket by the test: the relay refuses such a device=).
  const forged = page.locator('#devices tr:has(td:text-is("10.9.9.9"))');
  assert.equal(await forged.locator('.device-id').textContent(), XSS, 'a name that is markup is not shown literally');
  assert.equal((await forged.locator('.too-large').textContent()).trim(), 'messages too large: 3', 'the messages too large for its frames');
  assert.equal(await row.locator('.too-large').count(), 0, 'a board that missed nothing shows no too-large badge');
  assert.equal((await forged.locator('.also-from').textContent()).trim(), 'also connected from 10.8.8.8', 'a name claimed from two addresses');
  assert.equal(await row.locator('.also-from').count(), 0, 'a board alone under its name shows no also-from badge');
  assert.equal(await page.locator('main img[src=x]').count(), 0, 'a device name became markup');
  assert.equal(await page.locator('main script').count(), 0, 'a device name became a script');
  await shot(page, 'devices');

  log('relay settings: effective, secrets redacted');
  await page.goto(BASE + '/console/relay-settings');
  const rset = await page.textContent('main');
  assert.ok(rset.includes('--retry-schedule') && rset.includes('200ms') && /--push-signature-key\s*\(set, not shown\)\s*env/.test(rset), 'relay settings: ' + rset.slice(0, 400));
  assert.ok(!(await page.content()).includes(SIG_KEY), 'the signature key is on the page');
  await shot(page, 'relaysettings');
  assert.equal(alerts, 0, 'a script from untrusted text ran');

  log('Russian');
  await page.goto(BASE + '/console/');
  await Promise.all([page.waitForNavigation(), page.click('.langs a:text-is("ru")')]);
  assert.match(await page.textContent('nav'), /Доставки/);
  await shot(page, 'overview-ru');
  await page.goto(BASE + '/console/lang?l=en&back=/console/');

  log('a cross-site form post is refused and changes nothing');
  const evil = await ctx.newPage();
  const [resp] = await Promise.all([
    evil.waitForResponse((r) => r.url().startsWith(BASE + '/console/apps') && r.request().method() === 'POST'),
    evil.goto(EVIL),
  ]);
  assert.ok([401, 403].includes(resp.status()), 'cross-site POST answered ' + resp.status());
  await page.goto(BASE + '/console/apps');
  assert.ok(!(await page.textContent('main')).includes('Evil app'), 'the cross-site POST created an app');
  await evil.close();

  log('a viewer sees but cannot change');
  await Promise.all([page.waitForNavigation(), page.click('form[action="/console/logout"] button')]);
  await login(page, 'olga', VIEWER_PW);
  await page.goto(BASE + '/console/apps');
  assert.equal(await page.locator('form[action="/console/apps"]').count(), 0, 'viewer sees the create form');
  assert.equal(await page.locator('text=Rotate secret').count(), 0);
  await page.goto(BASE + '/console/handlers');
  assert.equal(await page.locator('form[action$="/pause"]').count(), 0, 'viewer sees pause');
  await page.goto(BASE + '/console/portals');
  assert.equal(await page.locator('form[action="/console/portals/allow"]').count(), 0, 'viewer sees approve');
  await page.goto(BASE + '/console/push');
  assert.equal(await page.locator('#push-test').count(), 0, 'viewer sees the test message form');
  const pushStatus = await page.evaluate(async (ch) => {
    const csrf = document.querySelector('input[name=csrf]').value;
    const r = await fetch('/console/push/test', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'csrf=' + encodeURIComponent(csrf) + '&channel=' + ch + '&text=viewer' });
    return r.status;
  }, DEVICE_CHANNEL);
  assert.equal(pushStatus, 403, 'a viewer sent a test message');
  await page.goto(BASE + '/console/devices');
  assert.ok((await page.textContent('#devices')).includes(XSS), 'a viewer cannot see the devices');
  // Forging the form with the viewer's own session and token: refused.
  const status = await page.evaluate(async () => {
    const csrf = document.querySelector('input[name=csrf]').value;
    const r = await fetch('/console/apps', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'csrf=' + encodeURIComponent(csrf) + '&name=Viewer+app' });
    return r.status;
  });
  assert.equal(status, 403);

  await browser.close();
  console.log('ok');
})().catch((e) => { console.error(`FAILED at: ${step}\n`, e); process.exit(1); });

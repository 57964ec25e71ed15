import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import {
  alignPayloadsWithOutput,
  assembleResponses,
  CoapClientResponse,
  coapClient,
  CoapRd,
  decodeReadable,
  LIBCOAP_AVAILABLE,
  LibcoapProcess,
  locationPath,
  parseCoapClientLog,
  parseLinkFormat,
  startCoapRd,
  startCoapServer,
} from './libcoap';

// These run against libcoap's own coap-server-notls / coap-rd-notls, so they prove the harness without
// depending on our code. They fail (not skip) when libcoap3-bin is missing: CI installs it.

describe('libcoap harness: log parser (canned coap-client 4.3.1 output)', () => {
  it('parses a readable payload, its code and options', () => {
    const log = [
      "v:1 t:CON c:GET i:f6be {01} [ Uri-Port:45683, Uri-Path:time ]",
      "v:1 t:ACK c:2.05 i:f6be {01} [ Content-Format:application/link-format, Max-Age:196607 ] :: 'a\\x0Ab'",
      'Nov 25 14:11:23.778 WARN something libcoap says that we do not know',
    ].join('\n');
    const parsed = parseCoapClientLog(log);
    assert.equal(parsed.pdus.length, 2);
    assert.equal(parsed.pdus[0].direction, 'sent');
    assert.deepEqual(
      parsed.pdus[0].options.map((o) => [o.number, o.value.toString('latin1')]),
      [[7, Buffer.from([0xb2, 0x73]).toString('latin1')], [11, 'time']],
    );
    const [response] = assembleResponses(parsed.pdus);
    assert.equal(response.code, '2.05');
    assert.equal(response.contentFormat, 40);
    assert.deepEqual(response.payload, Buffer.from('a\nb'));
    assert.deepEqual(response.token, Buffer.from([1]));
    assert.equal(response.messageId, 0xf6be);
  });

  it('parses binary payloads, numeric Content-Formats and hex options', () => {
    const log = [
      'v:1 t:ACK c:2.05 i:2af0 {ab12} [ ETag:0x00ff, Content-Format:11542, Observe:7 ] :: binary data length 3',
      '<<00ff41>>',
      '<<. . A >>',
      'v:1 t:ACK c:4.04 i:2af1 {ab12} [ ] :: \'Not Found\'',
    ].join('\n');
    const responses = assembleResponses(parseCoapClientLog(log).pdus);
    assert.equal(responses.length, 2);
    assert.deepEqual(responses[0].payload, Buffer.from([0x00, 0xff, 0x41]));
    assert.equal(responses[0].contentFormat, 11542);
    assert.equal(responses[0].observe, 7);
    assert.deepEqual(responses[0].options.find((o) => o.number === 4)?.value, Buffer.from([0x00, 0xff]));
    assert.equal(responses[1].code, '4.04');
    assert.equal(responses[1].payload.toString(), 'Not Found');
  });

  it('reassembles Block2 blocks and ignores -v 7 noise and duplicates', () => {
    const log = [
      'Nov 25 14:10:51.242 DEBG *  127.0.0.1:59575 <-> 127.0.0.1:45683 UDP : received 25 bytes',
      "v:1 t:ACK c:2.05 i:0001 {01} [ Content-Format:text/plain, Block2:0/M/16 ] :: '0123456789abcdef'",
      'Nov 25 14:10:51.242 DEBG *  127.0.0.1:59575 <-> 127.0.0.1:45683 UDP : sent 4 bytes',
      'v:1 t:CON c:GET i:0002 {01} [ Block2:1/_/16 ]',
      'Nov 25 14:10:51.242 DEBG *  127.0.0.1:59575 <-> 127.0.0.1:45683 UDP : received 25 bytes',
      "v:1 t:ACK c:2.05 i:0002 {01} [ Content-Format:text/plain, Block2:1/_/16 ] :: 'XYZ'",
      'Nov 25 14:10:51.242 DEBG *  127.0.0.1:59575 <-> 127.0.0.1:45683 UDP : received 25 bytes',
      "v:1 t:ACK c:2.05 i:0002 {01} [ Content-Format:text/plain, Block2:1/_/16 ] :: 'XYZ'",
      'Nov 25 14:10:51.242 DEBG ** process incoming 2.05 response:',
    ].join('\n');
    const responses = assembleResponses(parseCoapClientLog(log).pdus);
    assert.equal(responses.length, 1);
    assert.equal(responses[0].payload.toString(), '0123456789abcdefXYZ');
    assert.equal(responses[0].blocks, 2);
    assert.equal(responses[0].truncated, false);
  });

  it('uses the -o file to settle a literal "\\x41" and a cut-off line', () => {
    // libcoap does not escape a backslash: the text \x41 and the byte 0x41 print the same way.
    assert.deepEqual(decodeReadable('a\\x41'), Buffer.from('aA'));
    const body = Buffer.concat([Buffer.from('a\\x41'), Buffer.from([0x01, 0x41])]);
    const cut = 'B'.repeat(2100);
    const log = [
      "v:1 t:CON c:2.05 i:0001 {01} [ Observe:2 ] :: 'a\\x41\\x01A'",
      `v:1 t:CON c:2.05 i:0002 {01} [ Observe:3 ] :: '${cut.slice(0, 2000)}`,
    ].join('\n');
    const pdus = parseCoapClientLog(log).pdus;
    alignPayloadsWithOutput(pdus, Buffer.concat([body, Buffer.from(cut)]));
    const responses = assembleResponses(pdus);
    assert.deepEqual(responses[0].payload, body);
    assert.equal(responses[1].payload.toString(), cut);
    assert.equal(responses[1].truncated, false);
  });

  it('parses link-format with commas inside quotes', () => {
    const links = parseLinkFormat('</rd>;ins="default";rt="core.rd";ct=40,</rd/a-1>;A="";rt="x,y";obs');
    assert.deepEqual(
      links.map((l) => [l.target, l.attributes]),
      [
        ['/rd', { ins: 'default', rt: 'core.rd', ct: '40' }],
        ['/rd/a-1', { A: '', rt: 'x,y', obs: '' }],
      ],
    );
  });
});

describe('libcoap harness against coap-server-notls', () => {
  let server: LibcoapProcess | undefined;

  before(async () => {
    assert.ok(LIBCOAP_AVAILABLE, 'coap-client-notls is missing: apt-get install libcoap3-bin');
    server = await startCoapServer();
  });

  after(async () => {
    await server?.stop();
  });

  it('GETs / with code 2.05 and the banner text', async () => {
    const result = await coapClient(`${server!.uri}/`);
    assert.equal(result.exitCode, 0);
    assert.equal(result.responses.length, 1, result.stdout);
    assert.equal(result.responses[0].code, '2.05');
    assert.match(result.responses[0].payload.toString('utf8'), /^This is a test server made with libcoap/);
    assert.equal(result.timedOut, false);
  });

  it('parses a 4.04 for an unknown path', async () => {
    const result = await coapClient(`${server!.uri}/no/such/path`);
    assert.equal(result.exitCode, 0); // coap-client exits 0 on errors too
    assert.equal(result.responses.length, 1, result.stdout);
    assert.equal(result.responses[0].code, '4.04');
    assert.equal(result.responses[0].payload.toString(), 'Not Found');
    assert.match(result.stderr, /4\.04 Not Found/);
  });

  it('observes /time and collects every notification with increasing Observe values', async () => {
    const streamed: CoapClientResponse[] = [];
    let firstStreamedAt = 0;
    const result = await coapClient(`${server!.uri}/time`, {
      observeSeconds: 3,
      onResponse: (r) => {
        firstStreamedAt ||= Date.now();
        streamed.push(r);
      },
    });
    // onResponse fires as notifications arrive (stdbuf line buffering), not when the client exits
    assert.ok(Date.now() - firstStreamedAt > 1500, 'notifications were not streamed');
    const notifications = result.responses;
    assert.ok(notifications.length >= 2, result.stdout);
    for (const n of notifications) {
      assert.equal(n.code, '2.05');
      assert.match(n.payload.toString(), /\d\d:\d\d:\d\d$/);
      assert.equal(typeof n.observe, 'number');
    }
    for (let i = 1; i < notifications.length; i++) {
      assert.ok(notifications[i].observe! > notifications[i - 1].observe!, result.stdout);
    }
    assert.equal(streamed.length, notifications.length);
    // the deregistration coap-client sends at the end: a GET with Observe 1 (logged at -v 7 only)
    assert.equal(result.pdus.filter((p) => p.code === 'GET').length, 1);
  });

  it('round-trips a binary payload with Content-Format 42 exactly', async () => {
    const body = Buffer.concat([Buffer.from([0x00, 0xff, 0x5c, 0x78, 0x34, 0x31, 0x0a]), randomBytes(300)]);
    const put = await coapClient(`${server!.uri}/example_data`, { method: 'put', contentFormat: 42, payload: body });
    assert.match(put.responses[0]?.code ?? '', /^2\.0[14]$/, put.stdout);
    const get = await coapClient(`${server!.uri}/example_data`);
    assert.equal(get.responses[0].code, '2.05');
    assert.equal(get.responses[0].contentFormat, 42);
    assert.deepEqual(get.responses[0].payload, body);
  });

  it('round-trips a text payload with control bytes and a literal backslash-x exactly', async () => {
    const body = Buffer.from('temp \\x41 = 21\x01\n\u00e9\'"', 'utf8');
    await coapClient(`${server!.uri}/example_data`, { method: 'put', contentFormat: 0, payload: body });
    const get = await coapClient(`${server!.uri}/example_data`);
    assert.equal(get.responses[0].code, '2.05');
    assert.deepEqual(get.responses[0].payload, body);
  });

  it('reassembles a block-wise GET and sends a block-wise PUT', async () => {
    const body = randomBytes(3000);
    const put = await coapClient(`${server!.uri}/example_data`, {
      method: 'put',
      contentFormat: 42,
      payload: body,
      blockSize: 256,
    });
    assert.equal(put.responses.length, 1, put.stdout); // 2.31 Continue responses are left out
    assert.match(put.responses[0].code, /^2\.0[14]$/);
    const get = await coapClient(`${server!.uri}/example_data`, { blockSize: 512 });
    assert.equal(get.responses.length, 1, get.stdout);
    assert.equal(get.responses[0].blocks, 6);
    assert.equal(get.responses[0].truncated, false);
    assert.deepEqual(get.responses[0].payload, body);
  });

  it('sends extra options and a token', async () => {
    const result = await coapClient(`${server!.uri}/time`, {
      token: 'tk',
      accept: 0,
      options: [
        [4, Buffer.from([0xca, 0xfe])],
        [60, 0],
      ],
    });
    const request = result.pdus.find((p) => p.code === 'GET')!;
    // -T is the *initial* token: coap-client 4.3.1 increments its last byte before the first request
    assert.deepEqual(request.token, Buffer.from('tl'));
    assert.deepEqual(request.options.find((o) => o.number === 4)?.value, Buffer.from([0xca, 0xfe]));
    assert.deepEqual(request.options.find((o) => o.number === 60)?.value, Buffer.alloc(0));
    assert.equal(result.responses[0].code, '2.05');
    assert.deepEqual(result.responses[0].token, Buffer.from('tl'));
  });

  it('reports an RST (exit code 0)', async () => {
    const resetter = dgram.createSocket('udp4');
    resetter.on('message', (msg, peer) => {
      resetter.send(Buffer.from([0x70, 0x00, msg[2], msg[3]]), peer.port, peer.address); // RST, same message id
    });
    await new Promise<void>((resolve) => resetter.bind(0, '127.0.0.1', resolve));
    try {
      const result = await coapClient(`coap://127.0.0.1:${resetter.address().port}/x`, { timeoutSeconds: 3 });
      assert.equal(result.responses.length, 0);
      assert.equal(result.reset, true);
      assert.equal(result.timedOut, false);
      assert.equal(result.exitCode, 0);
    } finally {
      resetter.close();
    }
  });

  it('reports a timeout (exit code 0) when nobody answers', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const result = await coapClient(`coap://127.0.0.1:${silent.address().port}/x`, { timeoutSeconds: 1 });
      assert.equal(result.responses.length, 0);
      assert.equal(result.timedOut, true);
      assert.equal(result.exitCode, 0);
      assert.ok(Date.now() - started < 5000);
    } finally {
      silent.close();
    }
  });
});

describe('libcoap harness against coap-rd-notls', () => {
  let rd: CoapRd | undefined;

  beforeEach(async () => {
    assert.ok(LIBCOAP_AVAILABLE, 'coap-client-notls is missing: apt-get install libcoap3-bin');
    rd = await startCoapRd();
  });

  afterEach(async () => {
    await rd?.stop();
  });

  async function register(query: string, links: string): Promise<string> {
    const result = await coapClient(`${rd!.uri}/rd?${query}`, { method: 'post', contentFormat: 40, payload: links });
    assert.equal(result.responses[0]?.code, '2.01', result.stdout + result.stderr);
    const location = locationPath(result.responses[0]);
    assert.match(location, /^rd\/[^/]+$/);
    return location;
  }

  it('lists a registration, refuses an update, and (4.3.1) aborts on DELETE', async () => {
    assert.deepEqual(await rd!.registrations(), []);
    const location = await register('ep=test1&lt=300', '</3/0>,</1/0>');

    const listed = await rd!.registrations({ payload: true });
    assert.deepEqual(
      listed.map((r) => [r.location, r.payload]),
      [[location, '</3/0>,</1/0>']],
    );
    assert.equal(listed[0].endpoint, undefined); // 4.3.1 ignores ep=
    assert.equal(await rd!.lookup(location), '</3/0>,</1/0>');
    assert.equal(await rd!.lookup('rd/none'), undefined);

    const update = await coapClient(`${rd!.uri}/${location}?lt=300`, { method: 'post' });
    assert.equal(update.responses[0]?.code, '4.05');

    const crashed = new AbortController();
    void rd!.exit.then(() => crashed.abort());
    const del = await coapClient(`${rd!.uri}/${location}`, {
      method: 'delete',
      timeoutSeconds: 5,
      signal: crashed.signal,
    });
    if (del.responses.length) {
      // a libcoap where coap-rd survives DELETE
      assert.equal(del.responses[0].code, '2.02');
      assert.deepEqual(await rd!.registrations(), []);
    } else {
      // libcoap 4.3.1: hnd_delete_resource() frees the entry twice and glibc aborts
      const { signal } = await rd!.exit;
      assert.equal(signal, 'SIGABRT');
      assert.match(rd!.output(), /double free/);
      await assert.rejects(rd!.registrations(), /coap-rd is not running/);
    }
  });

  it('names the location after h= and ins=, and a new POST with the same h replaces the entry', async () => {
    assert.equal(await register('ep=x&h=node7&ins=i1', '</3/0>'), 'rd/node7-i1');
    assert.equal(await register('ep=x&h=node8', '</3/0>'), 'rd/node8');
    assert.equal(await register('ep=y&h=node8', '</5/0>'), 'rd/node8');
    const listed = await rd!.registrations({ payload: true });
    assert.deepEqual(
      listed.map((r) => [r.location, r.attributes.ins, r.payload]),
      [
        ['rd/node7-i1', 'i1', '</3/0>'],
        ['rd/node8', undefined, '</5/0>'],
      ],
    );
  });
});

/**
 * libcoap's coap-client-notls (Debian libcoap3-bin) as a raw client of the bootstrap server: an
 * independent CoAP implementation sends Bootstrap-Request and Bootstrap-Pack-Request, correct and
 * wrong, and reads the answers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { ContentFormat, LwM2MBootstrapServer, decodeComposite, type BootstrapFailedEvent, type BootstrapRequestEvent } from '../../lib';
import { LIBCOAP_AVAILABLE, coapClient, type CoapClientOptions, type CoapClientResponse } from '../helpers/libcoap';

describe('LwM2MBootstrapServer with coap-client-notls', function () {
  this.timeout(30_000);
  let server: LwM2MBootstrapServer;
  let base: string;
  const failed: BootstrapFailedEvent[] = [];

  before(() => assert.ok(LIBCOAP_AVAILABLE, 'libcoap3-bin is not installed (apt-get install -y libcoap3-bin)'));

  beforeEach(async () => {
    failed.length = 0;
    server = new LwM2MBootstrapServer({
      port: 0,
      address: '127.0.0.1',
      requestTimeout: 1500,
      configs: { 'raw-1': { servers: [{ uri: 'coap://127.0.0.1:5683', shortServerId: 5, lifetime: 60 }], writes: { '/11/0': { 0: 'apn' } } } },
    });
    server.on('bootstrapFailed', (event) => failed.push(event));
    const { port } = await server.listen();
    base = `coap://127.0.0.1:${port}`;
  });

  afterEach(() => server.close());

  const send = async (path: string, options: CoapClientOptions = {}): Promise<CoapClientResponse> => {
    const result = await coapClient(base + path, { timeoutSeconds: 5, ...options });
    assert.equal(result.responses.length, 1, `${result.command.join(' ')}\n${result.stdout}\n${result.stderr}`);
    return result.responses[0]!;
  };

  it('accepts a Bootstrap-Request with 2.04, then reports that the client did not answer Discover', async () => {
    const requested = once(server, 'bootstrapRequest');
    const response = await send('/bs?ep=raw-1&pct=112', { method: 'post' });
    assert.equal(response.code, '2.04');
    const [request] = (await requested) as [BootstrapRequestEvent];
    assert.equal(request.endpoint, 'raw-1');
    assert.equal(request.preferredFormat, ContentFormat.SENML_CBOR);
    // coap-client has exited: nothing answers the bootstrap server's first request
    const [failure] = (await once(server, 'bootstrapFailed')) as [BootstrapFailedEvent];
    assert.deepEqual({ endpoint: failure.endpoint, operation: failure.operation, code: failure.code }, { endpoint: 'raw-1', operation: 'discover', code: 'timeout' });
  });

  it('refuses an unknown endpoint, a request without ep, a bad pct and a GET on /bs', async () => {
    const unknown = await send('/bs?ep=nobody', { method: 'post' });
    assert.equal(unknown.code, '4.00');
    assert.match(unknown.payload.toString(), /no bootstrap configuration for the endpoint nobody/);
    assert.equal((await send('/bs', { method: 'post' })).code, '4.00');
    assert.equal((await send('/bs?ep=raw-1&pct=x', { method: 'post' })).code, '4.00');
    assert.equal((await send('/bs?ep=raw-1', { method: 'get' })).code, '4.05');
    assert.equal((await send('/rd?ep=raw-1', { method: 'post' })).code, '4.04');
    assert.deepEqual(
      failed.map((event) => event.endpoint),
      ['nobody', '', 'raw-1'],
      'each refused Bootstrap-Request is an event, named by its endpoint when it had one',
    );
  });

  it('answers a Bootstrap-Pack-Request with the configuration in SenML CBOR', async () => {
    const finished = once(server, 'bootstrapFinished');
    const response = await send('/bspack?ep=raw-1', { method: 'get', accept: ContentFormat.SENML_CBOR });
    assert.equal(response.code, '2.05');
    assert.equal(response.contentFormat, ContentFormat.SENML_CBOR);
    const pack = decodeComposite(ContentFormat.SENML_CBOR, response.payload);
    assert.equal(pack['/0/1/0'], 'coap://127.0.0.1:5683');
    assert.equal(pack['/0/1/2'], 3);
    assert.equal(pack['/0/1/10'], 5);
    assert.equal(pack['/1/0/1'], 60);
    assert.equal(pack['/11/0/0'], 'apn');
    await finished;
  });
});

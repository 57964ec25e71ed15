/**
 * The local CoAP peer of bench/clients: a child process that accepts LwM2M Register/Update/
 * De-register on one UDP socket and echoes raw datagrams on another (the baseline). It tells its
 * parent the two ports, and answers `count` messages with the number of live registrations.
 */
import { createSocket } from 'node:dgram';
import { CoapEndpoint } from '../lib/transport/endpoint';
import { OptionNumber } from '../lib/transport/message';
import { sizeSocketBuffers } from '../lib/transport/datagram';

async function main(): Promise<void> {
  const registrations = new Map<string, string>();
  let next = 0;
  const endpoint = new CoapEndpoint({ maxExchanges: 20_000 });
  endpoint.setRequestHandler((request) => {
    if (request.method === 'POST' && request.path.length === 1 && request.path[0] === 'rd') {
      const name = request.query.find((item) => item.startsWith('ep='))?.slice(3) ?? '';
      const id = (next++).toString(36);
      registrations.set(id, name);
      return { code: '2.01', options: [{ number: OptionNumber.LOCATION_PATH, value: Buffer.from('rd') }, { number: OptionNumber.LOCATION_PATH, value: Buffer.from(id) }] };
    }
    if (request.path[0] === 'rd' && request.path.length === 2 && registrations.has(request.path[1]!)) {
      if (request.method === 'DELETE') {
        registrations.delete(request.path[1]!);
        return { code: '2.02' };
      }
      return { code: '2.04' };
    }
    return { code: '4.04' };
  });
  const { port: coapPort } = await endpoint.listen(0, '127.0.0.1');

  const echo = createSocket('udp4');
  echo.on('message', (message, peer) => echo.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => echo.bind(0, '127.0.0.1', resolve));
  // the baseline's socket gets the buffer the server's sockets get, or a burst costs it datagrams ours would not lose
  sizeSocketBuffers(echo);

  process.on('message', (message: unknown) => {
    if (message === 'count') process.send!({ count: registrations.size });
    if (message === 'stop') {
      echo.close();
      void endpoint.close().then(() => process.exit(0));
    }
  });
  process.send!({ coapPort, echoPort: echo.address().port });
}

void main();

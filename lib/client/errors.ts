/**
 * A device-management request the client refuses, with the CoAP response code it answers. Custom
 * read/write/execute handlers throw it to choose the code; any other error becomes 5.00.
 */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  constructor(
    /** CoAP response code, e.g. `4.04` */
    readonly coapCode: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string): ClientError => new ClientError('4.00', message);
export const unauthorized = (message: string): ClientError => new ClientError('4.01', message);
export const notFound = (message: string): ClientError => new ClientError('4.04', message);
export const notAllowed = (message: string): ClientError => new ClientError('4.05', message);
export const notAcceptable = (message: string): ClientError => new ClientError('4.06', message);
export const unsupportedFormat = (message: string): ClientError => new ClientError('4.15', message);

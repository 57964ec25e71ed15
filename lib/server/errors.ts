/** The outcome of a device-management request that did not succeed, as the message contract names it. */
export type LwM2MErrorCode =
  | 'NOT_REGISTERED'
  | 'TIMEOUT'
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'NOT_ACCEPTABLE'
  | 'UNSUPPORTED_FORMAT'
  | 'INTERNAL'
  /** the server is closed, or could not start */
  | 'SERVER_NOT_RUNNING';

export class LwM2MError extends Error {
  override readonly name = 'LwM2MError';
  constructor(
    readonly code: LwM2MErrorCode,
    message: string,
    /** the response code when the device answered, e.g. `4.04` */
    readonly coapCode?: string,
  ) {
    super(message);
  }
}

const BY_COAP_CODE: Record<string, LwM2MErrorCode> = {
  '4.00': 'BAD_REQUEST',
  '4.01': 'UNAUTHORIZED',
  '4.03': 'UNAUTHORIZED',
  '4.04': 'NOT_FOUND',
  '4.05': 'METHOD_NOT_ALLOWED',
  '4.06': 'NOT_ACCEPTABLE',
  '4.15': 'UNSUPPORTED_FORMAT',
};

const MEANING: Record<string, string> = {
  '4.00': 'Bad Request',
  '4.01': 'Unauthorized',
  '4.02': 'Bad Option',
  '4.03': 'Forbidden',
  '4.04': 'Not Found',
  '4.05': 'Method Not Allowed',
  '4.06': 'Not Acceptable',
  '4.08': 'Request Entity Incomplete',
  '4.12': 'Precondition Failed',
  '4.13': 'Request Entity Too Large',
  '4.15': 'Unsupported Content-Format',
  '5.00': 'Internal Server Error',
  '5.01': 'Not Implemented',
  '5.03': 'Service Unavailable',
};

/** The error for an error response from a device; its diagnostic payload (if any) is quoted. */
export function errorFromResponse(operation: string, endpoint: string, coapCode: string, diagnostic: Buffer): LwM2MError {
  const meaning = MEANING[coapCode] ?? 'error';
  const detail = diagnostic.length > 0 && diagnostic.length < 300 ? `: ${diagnostic.toString('utf8')}` : '';
  return new LwM2MError(BY_COAP_CODE[coapCode] ?? 'INTERNAL', `${operation} on ${endpoint} failed with ${coapCode} ${meaning}${detail}`, coapCode);
}

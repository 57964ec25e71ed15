/*
 * A minimal CoAP-over-DTLS client on mbedTLS 2.28 (Debian libmbedtls-dev), the DTLS stack of much
 * device firmware: one DTLS 1.2 PSK handshake, one CoAP request, its response printed, exit 0.
 * The tests compile it with `cc` and run it against our DTLS server.
 *
 *   mbedtls-coaps-client HOST PORT IDENTITY KEY_HEX [options]
 *     --suite NAME     mbedTLS cipher suite name (default TLS-PSK-WITH-AES-128-CCM-8)
 *     --coap HEX       the CoAP datagram to send (default: a Register, see --ep/--lt)
 *     --ep NAME        endpoint name of the Register (default: the identity)
 *     --lt SECONDS     lifetime of the Register (default 60)
 *     --mfl BYTES      ask for a max_fragment_length of 512, 1024, 2048 or 4096
 *     --trunc-hmac     offer truncated_hmac
 *     --no-etm         do not offer encrypt_then_mac (offered by default)
 *     --no-ems         do not offer extended_master_secret (offered by default)
 *     --timeout S      give up after S seconds in all (default 20)
 *     --debug LEVEL    mbedTLS debug output (0..4) on stderr
 *
 * stdout: `suite <name>` after the handshake, then `response <hex>` and `code <c.dd>`.
 * Exit 0 when a response came; 2 with `error -0x.... <text>` on an mbedTLS error; 3 on timeout;
 * 1 on bad arguments.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/debug.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>

static void on_alarm(int signal_number) {
  (void)signal_number;
  static const char message[] = "error timeout\n";
  (void)!write(1, message, sizeof message - 1);
  _exit(3);
}

static int fail(const char *what, int ret) {
  char text[200];
  mbedtls_strerror(ret, text, sizeof text);
  printf("error -0x%04x %s: %s\n", (unsigned)-ret, what, text);
  return 2;
}

static void debug_out(void *context, int level, const char *file, int line, const char *text) {
  (void)context;
  fprintf(stderr, "%d %s:%d %s", level, file, line, text);
}

static int parse_hex(const char *hex, unsigned char *out, size_t room) {
  size_t length = strlen(hex);
  if (length % 2 != 0 || length / 2 > room) return -1;
  for (size_t i = 0; i < length / 2; i++) {
    unsigned int byte;
    if (sscanf(hex + 2 * i, "%2x", &byte) != 1) return -1;
    out[i] = (unsigned char)byte;
  }
  return (int)(length / 2);
}

/* One CoAP option (RFC 7252 §3.1), given the previous option number; returns the new length. */
static size_t put_option(unsigned char *out, size_t at, unsigned *previous, unsigned number, const char *value) {
  size_t length = strlen(value);
  unsigned delta = number - *previous;
  unsigned char *head = out + at++;
  unsigned char nibble_delta = delta < 13 ? (unsigned char)delta : 13;
  unsigned char nibble_length = length < 13 ? (unsigned char)length : 13;
  *head = (unsigned char)(nibble_delta << 4 | nibble_length);
  if (delta >= 13) out[at++] = (unsigned char)(delta - 13);
  if (length >= 13) out[at++] = (unsigned char)(length - 13);
  memcpy(out + at, value, length);
  *previous = number;
  return at + length;
}

/* CON POST /rd?ep=..&lt=..&lwm2m=1.1, Content-Format 40, payload </1/0>,</3/0>. */
static size_t build_register(unsigned char *out, const char *endpoint, const char *lifetime) {
  static const char payload[] = "</1/0>,</3/0>";
  char query[300];
  unsigned previous = 0;
  size_t at = 0;
  out[at++] = 0x41; /* version 1, CON, token length 1 */
  out[at++] = 0x02; /* POST */
  out[at++] = 0x12;
  out[at++] = 0x34;
  out[at++] = 0x7b; /* token */
  at = put_option(out, at, &previous, 11, "rd");
  out[at++] = (unsigned char)(1 << 4 | 1); /* Content-Format (12): 40, link-format */
  out[at++] = 40;
  previous = 12;
  snprintf(query, sizeof query, "ep=%s", endpoint);
  at = put_option(out, at, &previous, 15, query);
  snprintf(query, sizeof query, "lt=%s", lifetime);
  at = put_option(out, at, &previous, 15, query);
  at = put_option(out, at, &previous, 15, "lwm2m=1.1");
  out[at++] = 0xff;
  memcpy(out + at, payload, sizeof payload - 1);
  return at + sizeof payload - 1;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s HOST PORT IDENTITY KEY_HEX [--suite NAME] [--coap HEX] [--ep NAME] [--lt S] [--mfl BYTES] [--trunc-hmac] [--no-etm] [--no-ems] [--timeout S] [--debug LEVEL]\n", argv[0]);
    return 1;
  }
  const char *host = argv[1], *port = argv[2], *identity = argv[3];
  const char *suite_name = "TLS-PSK-WITH-AES-128-CCM-8", *coap_hex = NULL, *endpoint = identity, *lifetime = "60";
  int mfl = 0, trunc_hmac = 0, etm = 1, ems = 1, timeout = 20, debug = 0;
  for (int i = 5; i < argc; i++) {
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--trunc-hmac")) trunc_hmac = 1;
    else if (!strcmp(argv[i], "--no-etm")) etm = 0;
    else if (!strcmp(argv[i], "--no-ems")) ems = 0;
    else if (!next) {
      fprintf(stderr, "bad argument %s\n", argv[i]);
      return 1;
    } else if (!strcmp(argv[i], "--suite")) suite_name = argv[++i];
    else if (!strcmp(argv[i], "--coap")) coap_hex = argv[++i];
    else if (!strcmp(argv[i], "--ep")) endpoint = argv[++i];
    else if (!strcmp(argv[i], "--lt")) lifetime = argv[++i];
    else if (!strcmp(argv[i], "--mfl")) mfl = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--timeout")) timeout = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--debug")) debug = atoi(argv[++i]);
    else {
      fprintf(stderr, "bad argument %s\n", argv[i]);
      return 1;
    }
  }
  /* a peer that never answers must not hang the test run */
  signal(SIGALRM, on_alarm);
  alarm(timeout > 0 ? (unsigned)timeout : 20);
  setvbuf(stdout, NULL, _IOLBF, 0);

  unsigned char key[64];
  int key_length = parse_hex(argv[4], key, sizeof key);
  unsigned char request[1024];
  int request_length;
  if (coap_hex) request_length = parse_hex(coap_hex, request, sizeof request);
  else if (strlen(endpoint) > 200 || strlen(lifetime) > 20) request_length = -1;
  else request_length = (int)build_register(request, endpoint, lifetime);
  int suites[2] = { mbedtls_ssl_get_ciphersuite_id(suite_name), 0 };
  static const struct { int bytes; unsigned char code; } MFL[] = {
    { 512, MBEDTLS_SSL_MAX_FRAG_LEN_512 }, { 1024, MBEDTLS_SSL_MAX_FRAG_LEN_1024 }, { 2048, MBEDTLS_SSL_MAX_FRAG_LEN_2048 }, { 4096, MBEDTLS_SSL_MAX_FRAG_LEN_4096 },
  };
  unsigned char mfl_code = MBEDTLS_SSL_MAX_FRAG_LEN_NONE;
  for (size_t i = 0; i < sizeof MFL / sizeof MFL[0]; i++) if (MFL[i].bytes == mfl) mfl_code = MFL[i].code;
  if (key_length <= 0 || request_length <= 0 || suites[0] == 0 || (mfl != 0 && mfl_code == MBEDTLS_SSL_MAX_FRAG_LEN_NONE)) {
    fprintf(stderr, "bad key, CoAP datagram, cipher suite or max fragment length\n");
    return 1;
  }

  mbedtls_net_context socket;
  mbedtls_ssl_context ssl;
  mbedtls_ssl_config conf;
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  mbedtls_timing_delay_context timer;
  mbedtls_net_init(&socket);
  mbedtls_ssl_init(&ssl);
  mbedtls_ssl_config_init(&conf);
  mbedtls_entropy_init(&entropy);
  mbedtls_ctr_drbg_init(&drbg);

  int ret;
  if ((ret = mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)"coaps", 5)) != 0) return fail("ctr_drbg_seed", ret);
  if ((ret = mbedtls_net_connect(&socket, host, port, MBEDTLS_NET_PROTO_UDP)) != 0) return fail("net_connect", ret);
  if ((ret = mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_DATAGRAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0) return fail("ssl_config_defaults", ret);
  mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
  mbedtls_ssl_conf_ciphersuites(&conf, suites);
  if ((ret = mbedtls_ssl_conf_psk(&conf, key, (size_t)key_length, (const unsigned char *)identity, strlen(identity))) != 0) return fail("ssl_conf_psk", ret);
  mbedtls_ssl_conf_encrypt_then_mac(&conf, etm ? MBEDTLS_SSL_ETM_ENABLED : MBEDTLS_SSL_ETM_DISABLED);
  mbedtls_ssl_conf_extended_master_secret(&conf, ems ? MBEDTLS_SSL_EXTENDED_MS_ENABLED : MBEDTLS_SSL_EXTENDED_MS_DISABLED);
  if (trunc_hmac) mbedtls_ssl_conf_truncated_hmac(&conf, MBEDTLS_SSL_TRUNC_HMAC_ENABLED);
  if (mfl_code != MBEDTLS_SSL_MAX_FRAG_LEN_NONE && (ret = mbedtls_ssl_conf_max_frag_len(&conf, mfl_code)) != 0) return fail("ssl_conf_max_frag_len", ret);
  /* retransmit from 500 ms, double up to 4 s: a busy test machine is slow, loopback loses nothing */
  mbedtls_ssl_conf_handshake_timeout(&conf, 500, 4000);
  mbedtls_ssl_conf_read_timeout(&conf, 10000);
  if (debug > 0) {
    mbedtls_debug_set_threshold(debug);
    mbedtls_ssl_conf_dbg(&conf, debug_out, NULL);
  }
  if ((ret = mbedtls_ssl_setup(&ssl, &conf)) != 0) return fail("ssl_setup", ret);
  mbedtls_ssl_set_bio(&ssl, &socket, mbedtls_net_send, mbedtls_net_recv, mbedtls_net_recv_timeout);
  mbedtls_ssl_set_timer_cb(&ssl, &timer, mbedtls_timing_set_delay, mbedtls_timing_get_delay);

  do ret = mbedtls_ssl_handshake(&ssl);
  while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
  if (ret != 0) return fail("handshake", ret);
  printf("suite %s\n", mbedtls_ssl_get_ciphersuite(&ssl));

  do ret = mbedtls_ssl_write(&ssl, request, (size_t)request_length);
  while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
  if (ret < 0) return fail("write", ret);

  unsigned char response[2048];
  for (;;) {
    do ret = mbedtls_ssl_read(&ssl, response, sizeof response);
    while (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (ret <= 0) return fail("read", ret == 0 ? MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY : ret);
    if (ret < 4) continue;
    unsigned type = response[0] >> 4 & 3, code = response[1];
    if (code == 0) continue; /* an empty ACK: the response follows separately */
    if (type == 0) {
      /* a separate CON response: acknowledge it */
      unsigned char ack[4] = { 0x60, 0x00, response[2], response[3] };
      mbedtls_ssl_write(&ssl, ack, sizeof ack);
    }
    break;
  }
  printf("response ");
  for (int i = 0; i < ret; i++) printf("%02x", response[i]);
  printf("\ncode %u.%02u\n", response[1] >> 5, response[1] & 31);

  mbedtls_ssl_close_notify(&ssl);
  mbedtls_net_free(&socket);
  mbedtls_ssl_free(&ssl);
  mbedtls_ssl_config_free(&conf);
  mbedtls_ctr_drbg_free(&drbg);
  mbedtls_entropy_free(&entropy);
  return 0;
}

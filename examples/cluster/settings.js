// Node-RED settings shared by the instances of the cluster example: start.sh gives each instance
// its own user directory (where flows.json and the palette link are) and HTTP port, and the
// environment its flow reads (LWM2M_INSTANCE, LWM2M_COAP_PORT, LWM2M_REDIS_URL).
module.exports = {
  // the editor, the admin API and the flow's HTTP endpoints: this machine only
  uiHost: '127.0.0.1',
  flowFile: 'flows.json',
  // the example has no credentials to protect; a real deployment sets a secret (and adminAuth)
  credentialSecret: false,
  editorTheme: { tours: false, projects: { enabled: false } },
  telemetry: { enabled: false },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};

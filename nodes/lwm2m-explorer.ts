/**
 * `lwm2m-explorer`: the runtime half of the device explorer plugin. The editor half
 * (lwm2m-explorer.html, resources/lwm2m-explorer.js) is the "LwM2M" sidebar tab; the admin routes
 * and RED.comms events it uses belong to the lwm2m-server node. Registering the plugin here lists
 * it in the palette manager beside the nodes.
 */
import type { Red } from './red';

module.exports = (RED: Red) => {
  RED.plugins?.registerPlugin('lwm2m-explorer', { type: 'lwm2m-explorer' });
};

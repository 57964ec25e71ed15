/**
 * `npm start` until the Node-RED palette exists: a tour of the protocol core's data layer on the
 * specification's Device example. Every value printed is computed here, by the library.
 */
import {
  ContentFormat,
  ContentFormatError,
  decode,
  decodeLinks,
  encode,
  encodeComposite,
  formatName,
  LwM2MPath,
  ObjectModel,
} from '../lib';

const model = ObjectModel.bundled();
const device = {
  0: 'Open Mobile Alliance',
  1: 'Lightweight M2M Client',
  2: '345000123',
  3: '1.0',
  6: { 0: 1, 1: 5 },
  9: 100,
  13: 1367491215,
  16: 'U',
};

console.log('LwM2M data layer demo (the server, devices and Node-RED nodes come in later releases)\n');
console.log(`Object model: ${model.objects().length} bundled objects, e.g.`);
for (const [objectId, resourceId] of [[3, 9], [3303, 5700], [3342, 5500]]) {
  const object = model.object(objectId)!;
  const resource = object.resources.get(resourceId)!;
  console.log(`  ${object.name} / ${resource.name} — /${objectId}/0/${resourceId} (${resource.type}, ${resource.operations}${resource.units ? `, ${resource.units}` : ''})`);
}

const path = LwM2MPath.parse('/3/0');
console.log(`\nThe Device instance ${path} in every format that carries it:`);
for (const format of [ContentFormat.TLV, ContentFormat.OMA_JSON, ContentFormat.SENML_JSON, ContentFormat.SENML_CBOR, ContentFormat.LWM2M_CBOR]) {
  const payload = encode(format, path, device, model);
  const text = format === ContentFormat.OMA_JSON || format === ContentFormat.SENML_JSON;
  const shown = text ? payload.toString() : payload.toString('hex');
  const same = JSON.stringify(decode(format, path, payload, model)) === JSON.stringify(device);
  console.log(`  ${formatName(format).padEnd(20)} ${String(payload.length).padStart(4)} bytes, decodes back ${same ? 'unchanged' : 'DIFFERENTLY'}: ${shown.length > 72 ? shown.slice(0, 72) + '…' : shown}`);
}

const composite = encodeComposite(ContentFormat.SENML_JSON, { '/3/0/9': 95, '/3303/0/5700': 21.5 }, model);
console.log(`\nA composite (Read-Composite answer or Send): ${composite}`);

const links = decodeLinks(Buffer.from('</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</3303/0>;ver=1.1'));
console.log(`A registration's object list: ${links.map((link) => link.uri).join(', ')}`);

try {
  encode(ContentFormat.TLV, '/3/0/9', 'full', model);
} catch (error) {
  if (!(error instanceof ContentFormatError)) throw error;
  console.log(`\nValues that do not fit the model are refused: ${error.message}`);
}

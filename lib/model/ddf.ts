/**
 * Reads OMA DDF XML object definitions (the format of the OMA LwM2M registry) into
 * ObjectDefinitions. Lenient where the registry itself varies (case of type names, empty
 * operations), strict where a definition would be unusable (no id, unknown type).
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { MAX_ID } from '../path';
import { parseRangeEnumeration } from './range';
import type { ObjectDefinition, Operations, ResourceDefinition, ResourceType } from './types';

/** A definition that could not be read; `source` names the file (or other origin) and `reason` the problem. */
export class ModelError extends Error {
  override readonly name = 'ModelError';
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`${source}: ${reason}`);
  }
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  isArray: (name) => name === 'Object' || name === 'Item',
});

type XmlNode = Record<string, unknown>;

/** Parses one DDF document; a file may hold several `<Object>` elements. Throws ModelError. */
export function parseDdf(xml: string, source: string): ObjectDefinition[] {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new ModelError(source, `not well-formed XML (line ${valid.err.line}: ${valid.err.msg})`);
  }
  let document: XmlNode;
  try {
    document = parser.parse(xml) as XmlNode;
  } catch (error) {
    throw new ModelError(source, `cannot parse XML: ${(error as Error).message}`);
  }
  const root = document.LWM2M;
  const objects = isNode(root) ? root.Object : undefined;
  if (!Array.isArray(objects) || objects.length === 0) {
    throw new ModelError(source, 'no <LWM2M><Object> element: this is not an LwM2M object definition (DDF) file');
  }
  return objects.map((object, index) => {
    try {
      return readObject(object);
    } catch (error) {
      if (!(error instanceof DefinitionProblem)) throw error;
      const which = objects.length > 1 ? `object #${index + 1}: ` : '';
      throw new ModelError(source, which + error.message);
    }
  });
}

/** A problem inside one definition; parseDdf adds the file name. */
class DefinitionProblem extends Error {}

function readObject(node: unknown): ObjectDefinition {
  if (!isNode(node)) throw new DefinitionProblem('<Object> is empty');
  const id = readId(text(node.ObjectID), 'object', 'ObjectID');
  const where = `object ${id}`;
  const name = text(node.Name);
  if (!name) throw new DefinitionProblem(`${where} has no <Name>`);
  const resources = new Map<number, ResourceDefinition>();
  const items = isNode(node.Resources) ? node.Resources.Item : undefined;
  for (const item of Array.isArray(items) ? items : []) {
    const resource = readResource(item, where);
    if (resources.has(resource.id)) throw new DefinitionProblem(`${where} defines resource ${resource.id} twice`);
    resources.set(resource.id, resource);
  }
  return {
    id,
    name,
    description: text(node.Description1),
    version: text(node.ObjectVersion) || '1.0',
    lwm2mVersion: text(node.LWM2MVersion) || '1.0',
    urn: text(node.ObjectURN),
    multiple: readMultiple(text(node.MultipleInstances), where),
    mandatory: readMandatory(text(node.Mandatory)),
    resources,
  };
}

function readResource(node: unknown, object: string): ResourceDefinition {
  if (!isNode(node)) throw new DefinitionProblem(`${object}: a resource <Item> is empty`);
  const id = readId(text(node['@ID']), object, 'resource Item ID');
  const where = `${object}, resource ${id}`;
  const name = text(node.Name);
  if (!name) throw new DefinitionProblem(`${where} has no <Name>`);
  const operations = readOperations(text(node.Operations), where);
  const rangeEnumeration = text(node.RangeEnumeration);
  return {
    id,
    name,
    operations,
    multiple: readMultiple(text(node.MultipleInstances), where),
    mandatory: readMandatory(text(node.Mandatory)),
    type: readType(text(node.Type), operations, where),
    rangeEnumeration,
    ...parseRangeEnumeration(rangeEnumeration),
    units: text(node.Units),
    description: text(node.Description),
  };
}

function readId(value: string, where: string, what: string): number {
  if (!/^\d+$/.test(value) || Number(value) > MAX_ID) {
    throw new DefinitionProblem(`${where}: ${value ? `${what} "${value}" is not an integer in 0..${MAX_ID}` : `missing ${what}`}`);
  }
  return Number(value);
}

function readMultiple(value: string, where: string): boolean {
  const normal = value.toLowerCase();
  if (normal === 'multiple') return true;
  if (normal === 'single' || normal === '') return false;
  throw new DefinitionProblem(`${where}: MultipleInstances "${value}" is neither Single nor Multiple`);
}

function readMandatory(value: string): boolean {
  return value.toLowerCase() === 'mandatory';
}

function readOperations(value: string, where: string): Operations {
  const normal = value.toUpperCase().replace(/\s+/g, '');
  if (normal === '' || normal === 'NONE') return '';
  if (normal === 'R' || normal === 'W' || normal === 'RW' || normal === 'E') return normal;
  if (normal === 'WR') return 'RW';
  throw new DefinitionProblem(`${where}: Operations "${value}" is not one of R, W, RW, E or empty`);
}

const TYPE_NAMES: Record<string, ResourceType> = {
  string: 'String',
  integer: 'Integer',
  'unsigned integer': 'Unsigned Integer',
  unsignedinteger: 'Unsigned Integer',
  unsigned: 'Unsigned Integer',
  float: 'Float',
  boolean: 'Boolean',
  opaque: 'Opaque',
  time: 'Time',
  objlnk: 'Objlnk',
  corelnk: 'Corelnk',
  none: 'none',
};

function readType(value: string, operations: Operations, where: string): ResourceType {
  if (value === '') {
    if (operations === 'E' || operations === '') return 'none';
    throw new DefinitionProblem(`${where}: no <Type> for a resource with operations ${operations}`);
  }
  const type = TYPE_NAMES[value.toLowerCase().replace(/\s+/g, ' ')];
  if (!type) throw new DefinitionProblem(`${where}: unknown <Type> "${value}"`);
  return type;
}

function isNode(value: unknown): value is XmlNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Element text; fast-xml-parser gives a string, or an object when the element has attributes. */
function text(value: unknown): string {
  if (typeof value === 'string') return value.trim();
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (isNode(value) && typeof value['#text'] === 'string') return value['#text'].trim();
  return '';
}

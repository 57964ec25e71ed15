/**
 * The object model: the set of object definitions a server or client knows, by id and version.
 * Starts from the bundled core + IPSO objects; a folder of DDF XML files adds or overrides objects.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { bundledDefinitions } from './bundled';
import { ModelError, parseDdf } from './ddf';
import type { ObjectDefinition, ResourceDefinition } from './types';

/** What the codecs need from a model: the definition of a resource, if one is known. */
export interface ResourceLookup {
  resource(objectId: number, resourceId: number): ResourceDefinition | undefined;
}

export interface FolderLoadResult {
  /** Definitions read from the folder (already added to the model). */
  readonly loaded: ObjectDefinition[];
  /** One error per file that could not be read; every other file still loaded. */
  readonly errors: ModelError[];
}

export class ObjectModel implements ResourceLookup {
  /** The definition used when no version is asked for: the last one added for that id. */
  private readonly current = new Map<number, ObjectDefinition>();
  private readonly versions = new Map<string, ObjectDefinition>();

  constructor(definitions: Iterable<ObjectDefinition> = []) {
    for (const definition of definitions) this.add(definition);
  }

  /** A new model holding the bundled definitions (OMA objects 0–7, 9–13, 16, 19 and 20 and the common IPSO objects). */
  static bundled(): ObjectModel {
    return new ObjectModel(bundledDefinitions());
  }

  /** Adds a definition; it becomes the one used for its id, replacing any earlier one. */
  add(definition: ObjectDefinition): this {
    this.current.set(definition.id, definition);
    this.versions.set(versionKey(definition.id, definition.version), definition);
    return this;
  }

  /** The definition of an object: the exact version when asked for and known, else the current one. */
  object(objectId: number, version?: string): ObjectDefinition | undefined {
    if (version !== undefined) {
      const exact = this.versions.get(versionKey(objectId, version));
      if (exact) return exact;
    }
    return this.current.get(objectId);
  }

  resource(objectId: number, resourceId: number, version?: string): ResourceDefinition | undefined {
    return this.object(objectId, version)?.resources.get(resourceId);
  }

  has(objectId: number): boolean {
    return this.current.has(objectId);
  }

  /** The current definition of every known object, by id. */
  objects(): ObjectDefinition[] {
    return [...this.current.values()].sort((a, b) => a.id - b.id);
  }

  /** Parses DDF XML text and adds what it defines. Throws ModelError naming `source`. */
  addXml(xml: string, source = 'DDF XML'): ObjectDefinition[] {
    const definitions = parseDdf(xml, source);
    for (const definition of definitions) this.add(definition);
    return definitions;
  }

  /**
   * Adds every `*.xml` file of a folder (not its subfolders), in name order. A file that cannot be
   * read or parsed is reported in `errors` and skipped; the others still load.
   */
  async addFolder(folder: string): Promise<FolderLoadResult> {
    let names: string[];
    try {
      names = (await fs.readdir(folder, { withFileTypes: true }))
        .filter((entry) => entry.isFile() && entry.name.toLowerCase().endsWith('.xml'))
        .map((entry) => entry.name)
        .sort();
    } catch (error) {
      return { loaded: [], errors: [new ModelError(folder, `cannot read the folder: ${(error as Error).message}`)] };
    }
    const loaded: ObjectDefinition[] = [];
    const errors: ModelError[] = [];
    for (const name of names) {
      const file = path.join(folder, name);
      try {
        loaded.push(...this.addXml(await fs.readFile(file, 'utf8'), file));
      } catch (error) {
        errors.push(error instanceof ModelError ? error : new ModelError(file, (error as Error).message));
      }
    }
    return { loaded, errors };
  }
}

function versionKey(objectId: number, version: string): string {
  return `${objectId}@${version}`;
}

let shared: ObjectModel | undefined;
/** The bundled model shared by callers that pass none (codecs, mostly). Do not add to it. */
export function defaultModel(): ObjectModel {
  return (shared ??= ObjectModel.bundled());
}

import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { StoreError } from '../../lib/server/store';
import { MemoryStore } from '../../lib/server/memory-store';
import { FileStore, type FileStoreOptions } from '../../lib/server/file-store';
import type { RegistrationRecord } from '../../lib/server/types';
import { until } from '../helpers/wait';

function record(id: string, changes: Partial<RegistrationRecord> = {}): RegistrationRecord {
  return {
    id,
    endpoint: `urn:dev:${id}`,
    lifetime: 86400,
    version: '1.1',
    binding: 'U',
    queueMode: false,
    objectLinks: '</1/0>,</3/0>,</3303/0>;ver=1.1',
    address: '192.0.2.17',
    port: 56830,
    rootPath: '',
    registeredAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_500,
    ...changes,
  };
}

const byId = (a: RegistrationRecord, b: RegistrationRecord): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const sorted = (records: RegistrationRecord[]): RegistrationRecord[] => [...records].sort(byId);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** fs.promises as the store sees it: its functions are looked up on this object at each call. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fsModule: { rename: typeof fs.rename } = require('node:fs/promises');

/** Counts the renames onto `file` (one per completed write) while `body` runs; `hold` can delay a rename. */
async function countingRenames<T>(file: string, body: (state: { count: number; inFlight: number; maxInFlight: number; hold?: Promise<void> }) => Promise<T>): Promise<T> {
  const original = fsModule.rename;
  const state: { count: number; inFlight: number; maxInFlight: number; hold?: Promise<void> } = { count: 0, inFlight: 0, maxInFlight: 0 };
  fsModule.rename = async (from, to) => {
    if (to !== file) return original(from, to);
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    try {
      if (state.hold) await state.hold;
      await original(from, to);
      state.count++;
    } finally {
      state.inFlight--;
    }
  };
  try {
    return await body(state);
  } finally {
    fsModule.rename = original;
  }
}

describe('registration stores', () => {
  describe('MemoryStore', () => {
    it('saves, replaces, removes and loads', async () => {
      const store = new MemoryStore();
      assert.deepEqual(await store.load(), []);
      store.save(record('a'));
      store.save(record('b'));
      store.save(record('c'));
      store.save(record('b', { lifetime: 60, address: '198.51.100.1' }));
      store.remove('c');
      store.remove('never-saved');
      assert.deepEqual(sorted(await store.load()), [record('a'), record('b', { lifetime: 60, address: '198.51.100.1' })]);
      await store.flush();
      await store.close();
      await store.close();
    });

    it('keeps copies, not the caller’s objects', async () => {
      const store = new MemoryStore();
      const mine = record('a');
      store.save(mine);
      mine.port = 1;
      const [loaded] = await store.load();
      assert.equal(loaded.port, 56830);
      loaded.port = 2;
      assert.equal((await store.load())[0].port, 56830);
    });

    it('ignores changes after close', async () => {
      const store = new MemoryStore();
      store.save(record('a'));
      await store.close();
      store.save(record('b'));
      store.remove('a');
      assert.deepEqual(await store.load(), [record('a')]);
    });
  });

  describe('FileStore', () => {
    let dir: string;
    let file: string;
    let errors: StoreError[];
    const stores: FileStore[] = [];

    function open(options: FileStoreOptions = {}, at = file): FileStore {
      const store = new FileStore(at, { delay: 20, onError: (error) => errors.push(error), ...options });
      stores.push(store);
      return store;
    }

    beforeEach(async () => {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lwm2m-store-'));
      file = path.join(dir, 'registrations.json');
      errors = [];
    });

    afterEach(async () => {
      await Promise.all(stores.splice(0).map((store) => store.close()));
      await fs.rm(dir, { recursive: true, force: true });
    });

    it('loads an empty store when the file does not exist, and does not create it without changes', async () => {
      const store = open();
      assert.deepEqual(await store.load(), []);
      await store.flush();
      await store.close();
      await assert.rejects(fs.access(file), { code: 'ENOENT' });
      assert.deepEqual(errors, []);
    });

    it('survives a restart: a new store on the same file loads what was saved', async () => {
      const first = open();
      assert.deepEqual(await first.load(), []);
      first.save(record('a'));
      first.save(record('b', { sms: '+15551234567', queueMode: true, binding: 'UQ', version: '1.0' }));
      first.save(record('c', { rootPath: '/lwm2m' }));
      first.save(record('a', { updatedAt: 1_700_000_099_000 }));
      await first.flush();
      await first.close();

      const second = open();
      assert.deepEqual(sorted(await second.load()), [
        record('a', { updatedAt: 1_700_000_099_000 }),
        record('b', { sms: '+15551234567', queueMode: true, binding: 'UQ', version: '1.0' }),
        record('c', { rootPath: '/lwm2m' }),
      ]);

      second.remove('b');
      await second.close();
      const third = open();
      assert.deepEqual(sorted(await third.load()).map((r) => r.id), ['a', 'c']);
      assert.deepEqual(errors, []);
    });

    it('writes the documented format and leaves no temporary file', async () => {
      const store = open();
      store.save(record('a'));
      await store.flush();
      const data = JSON.parse(await fs.readFile(file, 'utf8'));
      assert.equal(data.format, 'lwm2m-registrations');
      assert.equal(data.version, 3);
      assert.deepEqual(data.registrations, [record('a')]);
      assert.deepEqual(data.observations, []);
      assert.deepEqual(data.queue, []);
      assert.deepEqual(await fs.readdir(dir), ['registrations.json']);
    });

    it('creates the parent directory when it is missing', async () => {
      const nested = path.join(dir, 'a', 'b', 'store.json');
      const store = open({}, nested);
      store.save(record('a'));
      await store.close();
      assert.deepEqual((await open({}, nested).load()).map((r) => r.id), ['a']);
    });

    it('close() writes pending changes, clears its timer, and may be called twice', async () => {
      const store = open({ delay: 60_000 });
      store.save(record('a'));
      await store.close();
      await store.close();
      assert.deepEqual((await open().load()).map((r) => r.id), ['a']);
      // a pending 60 s timer would keep mocha from exiting on its own
    });

    it('ignores (and reports once) changes after close', async () => {
      const store = open();
      store.save(record('a'));
      await store.close();
      store.save(record('b'));
      store.remove('a');
      assert.equal(errors.length, 1);
      assert.ok(errors[0] instanceof StoreError);
      assert.match(errors[0].message, /closed/);
      assert.deepEqual((await open().load()).map((r) => r.id), ['a']);
    });

    it('gathers many changes within the delay into exactly one write', async () => {
      await countingRenames(file, async (renames) => {
        const store = open({ delay: 1000 });
        await store.load();
        for (let i = 0; i < 500; i++) store.save(record(`d${i}`, { updatedAt: i }));
        await sleep(10);
        for (let i = 0; i < 500; i += 2) store.remove(`d${i}`);
        await sleep(10);
        store.save(record('late'));
        assert.equal(renames.count, 0, 'nothing is written before the delay has passed');
        await until(() => renames.count === 1, 'the write is done');
        await sleep(300); // nothing more is pending: no second write
        await store.flush();
        assert.equal(renames.count, 1);
        const loaded = await open().load();
        assert.equal(loaded.length, 251);
        assert.ok(loaded.some((r) => r.id === 'late'));
        assert.ok(!loaded.some((r) => r.id === 'd0'));
      });
    });

    it('keeps one write in flight; a change during a write schedules exactly one more', async () => {
      await countingRenames(file, async (renames) => {
        let release!: () => void;
        renames.hold = new Promise((resolve) => (release = resolve));
        const store = open({ delay: 10 });
        store.save(record('a'));
        const flushed = store.flush();
        await until(() => renames.inFlight === 1, 'the first write waits in rename');
        store.save(record('b'));
        store.save(record('c'));
        await sleep(50); // well past the delay: still no second write while the first is in flight
        assert.equal(renames.inFlight, 1);
        release();
        await flushed;
        await until(() => renames.count === 2, 'the second write is done');
        await sleep(100);
        assert.equal(renames.count, 2);
        assert.equal(renames.maxInFlight, 1);
        assert.deepEqual(sorted(await open().load()).map((r) => r.id), ['a', 'b', 'c']);
      });
    });

    it('flush() waits for changes made during an earlier write', async () => {
      const store = open({ delay: 0 });
      store.save(record('a'));
      await sleep(1); // the timer write starts
      store.save(record('b'));
      await store.flush();
      assert.deepEqual(sorted(await open().load()).map((r) => r.id), ['a', 'b']);
    });

    it('accepts changes before load(): they win over the file and are not lost', async () => {
      const first = open();
      first.save(record('old', { port: 1 }));
      first.save(record('kept'));
      first.save(record('gone'));
      await first.close();

      const second = open({ delay: 0 });
      second.save(record('old', { port: 2 }));
      second.save(record('new'));
      second.remove('gone');
      await sleep(50); // the first write runs before load() and must read the file first
      const loaded = sorted(await second.load());
      assert.deepEqual(loaded.map((r) => [r.id, r.port]), [['kept', 56830], ['new', 56830], ['old', 2]]);
      await second.close();
      assert.deepEqual(sorted(await open().load()), loaded);
    });

    it('saves, flushes and reloads 100,000 registrations', async function () {
      this.timeout(20_000);
      const store = open();
      await store.load();
      const all: RegistrationRecord[] = [];
      for (let i = 0; i < 100_000; i++) {
        const r = record(`r${i}`, { endpoint: `urn:imei:${350000000000000 + i}`, port: 1024 + (i % 60000), updatedAt: 1_700_000_000_000 + i });
        if (i % 7 === 0) r.sms = `+1555${String(i).padStart(7, '0')}`;
        all.push(r);
        store.save(r);
      }
      await store.flush();
      await store.close();
      const size = (await fs.stat(file)).size;
      assert.ok(size > 20_000_000, `file is ${size} bytes`);

      const loaded = await open().load();
      assert.equal(loaded.length, all.length);
      const byIdMap = new Map(loaded.map((r) => [r.id, r]));
      for (const r of all) assert.deepEqual(byIdMap.get(r.id), r);
      assert.deepEqual(errors, []);
    });

    describe('crashes and corrupt files', () => {
      async function writeValid(ids: string[]): Promise<string> {
        const store = open();
        for (const id of ids) store.save(record(id));
        await store.close();
        return fs.readFile(file, 'utf8');
      }

      it('ignores and deletes a half-written temporary file left by a crash', async () => {
        const before = await writeValid(['a', 'b']);
        const half = before.slice(0, Math.floor(before.length / 2));
        await fs.writeFile(`${file}.4242.tmp`, half);
        await fs.writeFile(`${file}.4243-7.tmp`, '');
        await fs.writeFile(path.join(dir, 'unrelated.tmp'), 'keep me');

        const store = open();
        assert.deepEqual(sorted(await store.load()).map((r) => r.id), ['a', 'b']);
        assert.deepEqual((await fs.readdir(dir)).sort(), ['registrations.json', 'unrelated.tmp']);
        assert.deepEqual(errors, []);
      });

      it('leaves the old file intact when a write fails before the rename', async () => {
        const before = await writeValid(['a']);
        const original = fsModule.rename;
        fsModule.rename = async () => {
          throw Object.assign(new Error('simulated crash before rename'), { code: 'EIO' });
        };
        const store = open();
        try {
          await store.load();
          store.save(record('b'));
          await store.flush();
        } finally {
          fsModule.rename = original;
        }
        assert.equal(await fs.readFile(file, 'utf8'), before);
        assert.deepEqual(await fs.readdir(dir), ['registrations.json'], 'the temporary file is removed');
        assert.equal(errors.length, 1);
        assert.match(errors[0].message, /simulated crash before rename/);
        // retried on the next flush
        await store.flush();
        assert.deepEqual(sorted(await open().load()).map((r) => r.id), ['a', 'b']);
      });

      const corrupt: Array<[string, (valid: string) => string, RegExp]> = [
        ['a truncated file', (valid) => valid.slice(0, valid.length - 10), /not valid JSON/],
        ['an empty file', () => '', /empty/],
        ['a JSON file of another format', () => JSON.stringify({ hello: 'world' }), /not a registration store/],
        ['a newer format version', (valid) => valid.replace('"version":3', '"version":4'), /version 4, newer/],
        ['registrations that are not an array', () => JSON.stringify({ format: 'lwm2m-registrations', version: 1, registrations: {} }), /not an array/],
      ];
      for (const [what, damage, reason] of corrupt) {
        it(`rejects ${what} with a StoreError naming the file`, async () => {
          await fs.writeFile(file, damage(await writeValid(['a', 'b'])));
          await assert.rejects(open().load(), (error: unknown) => {
            assert.ok(error instanceof StoreError);
            assert.equal(error.name, 'StoreError');
            assert.equal(error.file, file);
            assert.ok(error.message.includes(file));
            assert.match(error.reason, reason);
            return true;
          });
        });
      }

      it('after a corrupt file, the first write keeps a copy of it and replaces it', async () => {
        await fs.writeFile(file, '{"format":"lwm2m-registrations","version":1,"registrations":[{"id":');
        const store = open();
        await assert.rejects(store.load(), StoreError);
        store.save(record('fresh'));
        await store.close();
        assert.equal(await fs.readFile(`${file}.corrupt`, 'utf8'), '{"format":"lwm2m-registrations","version":1,"registrations":[{"id":');
        assert.deepEqual((await open().load()).map((r) => r.id), ['fresh']);
      });

      it('skips a record with a wrong or missing field, reports it, and loads the others', async () => {
        const good = [record('a'), record('c', { sms: '12345' })];
        const registrations: unknown[] = [
          good[0],
          { ...record('b'), port: '5683' },
          good[1],
          { ...record('d'), version: '2.0' },
          (({ endpoint: _endpoint, ...rest }) => rest)(record('e')),
          { ...record('f'), sms: null },
          'not a record',
          { ...record('a'), port: 9 }, // duplicate id
          { ...record('g'), extra: 'dropped' },
        ];
        await fs.writeFile(file, JSON.stringify({ format: 'lwm2m-registrations', version: 1, registrations }));
        const loaded = sorted(await open().load());
        assert.deepEqual(loaded, [...good, record('g')].sort(byId));
        assert.equal(errors.length, 6);
        assert.ok(errors.every((error) => error instanceof StoreError && error.file === file));
        assert.match(errors[0].message, /#1 \(id "b"\) skipped: field "port" must be an integer 0\.\.65535, not string "5683"/);
        assert.match(errors[1].message, /#3 \(id "d"\) skipped: field "version"/);
        assert.match(errors[2].message, /#4 \(id "e"\) skipped: field "endpoint" is missing/);
        assert.match(errors[3].message, /#5 \(id "f"\) skipped: field "sms" must be a string, not null/);
        assert.match(errors[4].message, /#6 skipped: not an object/);
        assert.match(errors[5].message, /#7 \(id "a"\) skipped: duplicate id/);
      });

      it('reports at most a few invalid records one by one, then a count', async () => {
        const registrations = Array.from({ length: 25 }, (_, i) => ({ ...record(`x${i}`), lifetime: -1 }));
        await fs.writeFile(file, JSON.stringify({ format: 'lwm2m-registrations', version: 1, registrations: [...registrations, record('ok')] }));
        assert.deepEqual((await open().load()).map((r) => r.id), ['ok']);
        assert.equal(errors.length, 11);
        assert.match(errors[10].message, /15 more invalid registrations skipped \(25 in all\)/);
      });
    });

    describe('write failures', () => {
      it('reports a StoreError, keeps working in memory, retries, and still closes', async () => {
        const blocker = path.join(dir, 'not-a-directory');
        await fs.writeFile(blocker, 'a regular file where the store directory should be');
        const at = path.join(blocker, 'registrations.json');
        const store = open({}, at);
        assert.deepEqual(await store.load(), []);
        store.save(record('a'));
        store.save(record('b'));
        await store.flush();
        assert.equal(errors.length, 1);
        assert.ok(errors[0] instanceof StoreError);
        assert.equal(errors[0].file, at);
        assert.match(errors[0].message, /could not write 2 records/);

        // still a working store in memory
        store.remove('a');
        store.save(record('c'));
        assert.deepEqual(sorted(await store.load()).map((r) => r.id), ['b', 'c']);
        await until(() => errors.length === 2, 'the change retried the write (and it failed again)');

        // once the path is usable again, the next flush writes everything
        await fs.rm(blocker);
        await store.flush();
        assert.equal(errors.length, 2);
        assert.deepEqual(sorted(await open({}, at).load()).map((r) => r.id), ['b', 'c']);
        await store.close();
      });

      it('close() resolves even when its final write fails', async () => {
        const blocker = path.join(dir, 'file');
        await fs.writeFile(blocker, '');
        const store = open({ delay: 60_000 }, path.join(blocker, 'store.json'));
        store.save(record('a'));
        await store.close();
        assert.equal(errors.length, 1);
      });

      it('does not write over a store file it cannot read', async () => {
        await fs.mkdir(file); // a directory where the file should be: EISDIR on read
        const store = open();
        await assert.rejects(store.load(), (error: unknown) => error instanceof StoreError && /could not be read/.test(error.reason));
        store.save(record('a'));
        await store.close();
        assert.ok((await fs.stat(file)).isDirectory());
        assert.equal(errors.length, 1);
        assert.match(errors[0].message, /not written/);
      });

      it('reports through process warnings by default', async () => {
        const blocker = path.join(dir, 'file');
        await fs.writeFile(blocker, '');
        const warnings: Error[] = [];
        const listener = (warning: Error): void => void warnings.push(warning);
        process.on('warning', listener);
        try {
          const store = new FileStore(path.join(blocker, 'store.json'));
          store.save(record('a'));
          await store.close();
          await sleep(10); // warnings are emitted on the next tick
        } finally {
          process.off('warning', listener);
        }
        assert.equal(warnings.length, 1);
        assert.equal(warnings[0].name, 'StoreError');
      });
    });

    it('rejects bad options at construction', () => {
      assert.throws(() => new FileStore(''), TypeError);
      assert.throws(() => new FileStore(file, { delay: -1 }), TypeError);
      assert.throws(() => new FileStore(file, { delay: Number.NaN }), TypeError);
    });
  });
});

/**
 * What every RegistrationStore promises, checked on each of them (MemoryStore, FileStore,
 * RedisStore on a real redis-server), then what only the Redis store has to cope with: data of
 * others under its keys, a Redis that is not there, one that goes away and comes back.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { StoreError, type RegistrationStore } from '../../lib/server/store';
import { MemoryStore } from '../../lib/server/memory-store';
import { FileStore } from '../../lib/server/file-store';
import { RedisStore, type RedisStoreOptions } from '../../lib/server/redis-store';
import type { ObservationRecord, QueuedRequestRecord, RegistrationRecord } from '../../lib/server/types';
import { freeTcpPort } from '../helpers/ports';
import { startRedis, type TestRedis } from '../helpers/redis';
import { until } from '../helpers/wait';

function registration(id: string, changes: Partial<RegistrationRecord> = {}): RegistrationRecord {
  return {
    id,
    endpoint: `urn:dev:${id}`,
    lifetime: 86400,
    version: '1.1',
    binding: 'UQ',
    queueMode: true,
    sms: '+15551234567',
    objectLinks: '</1/0>,</3/0>,</3303/0>;ver=1.1',
    address: '192.0.2.17',
    port: 56830,
    rootPath: '/lwm2m',
    registeredAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_500,
    identity: `psk-${id}`,
    ...changes,
  };
}

function observation(id: string, changes: Partial<ObservationRecord> = {}): ObservationRecord {
  return {
    id,
    registrationId: 'r1',
    endpoint: 'urn:dev:r1',
    paths: ['/3303/0/5700', '/3/0'],
    composite: true,
    token: '8a1f00c3',
    request: { method: 'FETCH', path: ['lwm2m'], query: ['pmin=10'], accept: 112, contentFormat: 112, payload: 'gaEhbS8zMzAzLzAvNTcwMA==' },
    first: { contentFormat: 112, payload: 'gqIAbS8zMzAzLzAvNTcwMAL7QDeAAAAAAAA=' },
    startedAt: 1_700_000_001_000,
    instance: 'node-a',
    ...changes,
  };
}

function queued(id: string, changes: Partial<QueuedRequestRecord> = {}): QueuedRequestRecord {
  return {
    id,
    registrationId: 'r1',
    endpoint: 'urn:dev:r1',
    operation: 'Write /3/0/14',
    request: { method: 'PUT', path: ['3', '0', '14'], contentFormat: 0, payload: 'KzAxOjAw' },
    success: ['2.04'],
    queuedAt: 1_700_000_002_000,
    expiresAt: 1_700_000_062_000,
    ...changes,
  };
}

/** One table of a store, reached the same way whatever the table. */
interface TableAccess<R extends { id: string }> {
  name: string;
  record: (id: string, changes?: Partial<R>) => R;
  /** a change that makes a record differ */
  changed: Partial<R>;
  load: (store: RegistrationStore) => Promise<R[]>;
  save: (store: RegistrationStore, record: R) => void;
  remove: (store: RegistrationStore, id: string) => void;
}

const REGISTRATIONS: TableAccess<RegistrationRecord> = {
  name: 'registrations',
  record: registration,
  changed: { lifetime: 60, address: '198.51.100.1' },
  load: (store) => store.load(),
  save: (store, record) => store.save(record),
  remove: (store, id) => store.remove(id),
};
const OBSERVATIONS: TableAccess<ObservationRecord> = {
  name: 'observations',
  record: observation,
  changed: { paths: ['/3303/0'], first: { payload: 'AA==' } },
  load: (store) => store.loadObservations(),
  save: (store, record) => store.saveObservation(record),
  remove: (store, id) => store.removeObservation(id),
};
const QUEUE: TableAccess<QueuedRequestRecord> = {
  name: 'queued requests',
  record: queued,
  changed: { operation: 'Execute /3/0/4', request: { method: 'POST', path: ['3', '0', '4'] } },
  load: (store) => store.loadQueue(),
  save: (store, record) => store.saveQueued(record),
  remove: (store, id) => store.removeQueued(id),
};

/** The record without the optional fields named. */
function without<R extends object>(record: R, ...fields: Array<keyof R>): R {
  const copy = { ...record };
  for (const field of fields) delete copy[field];
  return copy;
}

const byId = <R extends { id: string }>(records: R[]): R[] => [...records].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

interface Made {
  store: RegistrationStore;
  /** another store on the same data (MemoryStore: the same one) */
  reopen(): Promise<RegistrationStore>;
}

interface ContractOptions {
  /** the store reports the first change after close() to onError (MemoryStore has no onError) */
  reportsChangesAfterClose: boolean;
}

/**
 * The contract, for one kind of store. `make(onError)` gives a fresh, empty store (and a way to
 * reopen its data); every store it and reopen() give is closed after each test.
 */
function storeContract(name: string, make: (onError: (error: StoreError) => void) => Promise<Made>, options: ContractOptions): void {
  describe(`${name} (the store contract)`, () => {
    let reports: StoreError[];
    let opened: RegistrationStore[];

    const fresh = async (): Promise<{ store: RegistrationStore; reopen(): Promise<RegistrationStore> }> => {
      const made = await make((error) => reports.push(error));
      opened.push(made.store);
      return {
        store: made.store,
        reopen: async () => {
          const store = await made.reopen();
          opened.push(store);
          return store;
        },
      };
    };

    beforeEach(() => {
      reports = [];
      opened = [];
    });

    afterEach(async () => {
      for (const store of opened) await store.close();
    });

    const tableCases = <R extends { id: string }>(table: TableAccess<R>): void => {
      describe(table.name, () => {
        it('saves, replaces, removes and loads, before and after flush()', async () => {
          const { store } = await fresh();
          assert.deepEqual(await table.load(store), []);
          table.save(store, table.record('a'));
          table.save(store, table.record('b'));
          table.save(store, table.record('c'));
          table.save(store, table.record('b', table.changed));
          table.remove(store, 'c');
          const expected = [table.record('a'), table.record('b', table.changed)];
          assert.deepEqual(byId(await table.load(store)), expected);
          await store.flush();
          assert.deepEqual(byId(await table.load(store)), expected);
          // a save after a remove of the same id brings it back
          table.remove(store, 'a');
          table.save(store, table.record('a', table.changed));
          await store.flush();
          assert.deepEqual(byId(await table.load(store)), [table.record('a', table.changed), table.record('b', table.changed)]);
          assert.deepEqual(reports, []);
        });

        it('keeps copies: changing the caller’s object after save, or a loaded one, changes nothing stored', async () => {
          const { store, reopen } = await fresh();
          const mine = table.record('a');
          table.save(store, mine);
          Object.assign(mine, table.changed, { id: 'a' });
          const [loaded] = await table.load(store);
          assert.deepEqual(loaded, table.record('a'));
          Object.assign(loaded!, table.changed);
          assert.deepEqual(await table.load(store), [table.record('a')]);
          await store.flush();
          assert.deepEqual(await table.load(await reopen()), [table.record('a')]);
        });

        it('removes an unknown id harmlessly', async () => {
          const { store, reopen } = await fresh();
          table.save(store, table.record('a'));
          table.remove(store, 'never-saved');
          table.remove(store, '');
          await store.flush();
          assert.deepEqual(await table.load(await reopen()), [table.record('a')]);
          assert.deepEqual(reports, []);
        });

        it('survives a reopen after flush()', async () => {
          const { store, reopen } = await fresh();
          for (let index = 0; index < 50; index++) table.save(store, table.record(`id-${index}`));
          for (let index = 0; index < 50; index += 5) table.remove(store, `id-${index}`);
          table.save(store, table.record('id-1', table.changed));
          await store.flush();
          const expected = byId(Array.from({ length: 50 }, (_, index) => (index === 1 ? table.record('id-1', table.changed) : table.record(`id-${index}`))).filter((_, index) => index % 5 !== 0));
          const again = await reopen();
          assert.deepEqual(byId(await table.load(again)), expected);
          // and the reopened store keeps working
          table.remove(again, 'id-2');
          await again.flush();
          assert.equal((await table.load(again)).length, expected.length - 1);
        });

        it('ignores changes after close(), which may be called twice', async () => {
          const { store, reopen } = await fresh();
          table.save(store, table.record('a'));
          await store.close();
          await store.close();
          table.save(store, table.record('b'));
          table.remove(store, 'a');
          table.save(store, table.record('c'));
          const again = await reopen();
          assert.deepEqual(await table.load(again), [table.record('a')]);
          if (options.reportsChangesAfterClose) {
            assert.equal(reports.length, 1, reports.join('\n'));
            assert.match(reports[0]!.reason, /closed/);
          } else assert.deepEqual(reports, []);
        });
      });
    };
    tableCases(REGISTRATIONS);
    tableCases(OBSERVATIONS);
    tableCases(QUEUE);

    it('loads 20,000 registrations back complete', async function () {
      this.timeout(300_000);
      const { store, reopen } = await fresh();
      const count = 20_000;
      for (let index = 0; index < count; index++) store.save(registration(`r${index}`, { port: index % 65536 }));
      await store.flush();
      const loaded = await (await reopen()).load();
      assert.equal(loaded.length, count);
      const ids = new Set(loaded.map((record) => record.id));
      assert.equal(ids.size, count);
      assert.deepEqual(loaded.find((record) => record.id === 'r12345'), registration('r12345', { port: 12345 }));
      assert.deepEqual(reports, []);
    });

    it('loads the queue in queuedAt order, whatever the order of the saves', async () => {
      const { store, reopen } = await fresh();
      const times = [5, 1, 4, 2, 3, 9, 7, 8, 6, 0];
      for (const time of times) store.saveQueued(queued(`q-${9 - time}`, { queuedAt: 1_700_000_000_000 + time }));
      // a replacement moves a request to its new time
      store.saveQueued(queued('q-9', { queuedAt: 1_700_000_000_100 }));
      const expected = [1, 2, 3, 4, 5, 6, 7, 8, 9, 100].map((time) => 1_700_000_000_000 + time);
      assert.deepEqual((await store.loadQueue()).map((record) => record.queuedAt), expected);
      await store.flush();
      const loaded = await (await reopen()).loadQueue();
      assert.deepEqual(loaded.map((record) => record.queuedAt), expected);
      assert.deepEqual(loaded.map((record) => record.id), ['q-8', 'q-7', 'q-6', 'q-5', 'q-4', 'q-3', 'q-2', 'q-1', 'q-0', 'q-9']);
    });

    it('round-trips records with nested and optional fields deep-equal', async () => {
      const { store, reopen } = await fresh();
      const records = {
        registrations: [registration('full'), without(registration('plain', { rootPath: '' }), 'sms', 'identity')],
        observations: [observation('full'), without(observation('bare', { request: { method: 'GET', path: ['3303', '0', '5700'] }, first: { payload: '' }, composite: false, token: '' }), 'instance')],
        queue: [queued('full'), queued('execute', { request: { method: 'POST', path: ['3', '0', '4'], query: [] }, success: ['2.04', '2.01'] })],
      };
      for (const record of records.registrations) store.save(record);
      for (const record of records.observations) store.saveObservation(record);
      for (const record of records.queue) store.saveQueued(record);
      await store.flush();
      const again = await reopen();
      assert.deepEqual(byId(await again.load()), byId(records.registrations));
      assert.deepEqual(byId(await again.loadObservations()), byId(records.observations));
      assert.deepEqual(byId(await again.loadQueue()), byId(records.queue));
      assert.deepEqual(reports, []);
    });
  });
}

storeContract(
  'MemoryStore',
  async () => {
    const store = new MemoryStore();
    return { store, reopen: async () => store };
  },
  { reportsChangesAfterClose: false },
);

describe('FileStore, for the contract', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lwm2m-contract-'));
  });
  after(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  let files = 0;
  storeContract(
    'FileStore',
    async (onError) => {
      const file = path.join(dir, `store-${files++}.json`);
      return { store: new FileStore(file, { delay: 5, onError }), reopen: async () => new FileStore(file, { delay: 5, onError }) };
    },
    { reportsChangesAfterClose: true },
  );
});

describe('RedisStore', () => {
  let redis: TestRedis;
  /** a client of our own, to look at what the store wrote and to write what others might */
  let peer: Redis;
  let prefixes = 0;
  const nextPrefix = (): string => `test-${process.pid}-${prefixes++}:`;

  before(async () => {
    redis = await startRedis();
    peer = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  });
  after(async () => {
    peer?.disconnect();
    await redis?.stop();
  });

  storeContract(
    'RedisStore',
    async (onError) => {
      const prefix = nextPrefix();
      return { store: new RedisStore({ url: redis.url, prefix, onError }), reopen: async () => new RedisStore({ url: redis.url, prefix, onError }) };
    },
    { reportsChangesAfterClose: true },
  );

  describe('on its own', () => {
    let reports: StoreError[];
    let stores: RedisStore[];
    const open = (options: Partial<RedisStoreOptions> = {}): RedisStore => {
      const store = new RedisStore({ url: redis.url, prefix: nextPrefix(), onError: (error) => reports.push(error), ...options });
      stores.push(store);
      return store;
    };
    const reasons = (): string => reports.map((report) => report.reason).join('\n');

    beforeEach(() => {
      reports = [];
      stores = [];
    });
    afterEach(async () => {
      for (const store of stores) await store.close();
    });

    it('keeps one hash per table under its prefix, a field per id holding the record’s JSON', async () => {
      const store = open({ prefix: 'layout:' });
      store.save(registration('a'));
      store.saveObservation(observation('o'));
      store.saveQueued(queued('q'));
      await store.flush();
      assert.deepEqual((await peer.keys('layout:*')).sort(), ['layout:observations', 'layout:queue', 'layout:registrations']);
      assert.deepEqual(JSON.parse((await peer.hget('layout:registrations', 'a'))!), registration('a'));
      assert.deepEqual(JSON.parse((await peer.hget('layout:observations', 'o'))!), observation('o'));
      assert.deepEqual(JSON.parse((await peer.hget('layout:queue', 'q'))!), queued('q'));
      store.remove('a');
      await store.flush();
      assert.equal(await peer.hexists('layout:registrations', 'a'), 0);
      await peer.del('layout:observations', 'layout:queue');
    });

    it('skips and reports data of others under its keys (not JSON, wrong fields, a key of another type), never crashing', async () => {
      const store = open();
      const { prefix } = store;
      await peer.hset(`${prefix}registrations`, {
        good: JSON.stringify(registration('good')),
        text: 'not json {',
        fields: JSON.stringify({ ...registration('fields'), port: 'eighty' }),
        array: '[1,2]',
        elsewhere: JSON.stringify(registration('another-id')),
      });
      await peer.hset(`${prefix}observations`, { o: JSON.stringify(observation('o', { token: 'not hex' })) });
      await peer.rpush(`${prefix}queue`, 'a list, not a hash');
      await peer.set(`${prefix}unrelated`, 'a key the store does not use');

      assert.deepEqual(await store.load(), [registration('good')]);
      assert.equal(reports.length, 4, reasons());
      assert.match(reasons(), /registration "text" skipped: not valid JSON/);
      assert.match(reasons(), /registration "fields" skipped: field "port" must be an integer 0\.\.65535/);
      assert.match(reasons(), /registration "array" skipped: not an object/);
      assert.match(reasons(), /registration "elsewhere" skipped: the record under field "elsewhere" has id "another-id"/);
      assert.ok(reports.every((report) => report instanceof StoreError && report.file === store.url));

      reports = [];
      assert.deepEqual(await store.loadObservations(), []);
      assert.match(reasons(), /observation "o" skipped: field "token"/);
      reports = [];
      assert.deepEqual(await store.loadQueue(), []);
      assert.equal(reports.length, 1, reasons());
      assert.match(reports[0]!.reason, /queue is a list, not a hash/);

      // writes to the other tables go on; the one to the list fails, reported once for many attempts
      reports = [];
      store.saveQueued(queued('q1'));
      store.save(registration('b'));
      await store.flush();
      store.saveQueued(queued('q2'));
      await store.flush();
      assert.equal(reports.length, 1, reasons());
      assert.match(reports[0]!.reason, /write failed: WRONGTYPE.*; 1 change wait/);
      assert.deepEqual(await peer.hkeys(`${prefix}registrations`).then((ids) => ids.sort()), ['array', 'b', 'elsewhere', 'fields', 'good', 'text']);
      await peer.del(`${prefix}registrations`, `${prefix}observations`, `${prefix}queue`, `${prefix}unrelated`);
    });

    it('reports the first ten invalid records one by one, then a count', async () => {
      const store = open();
      const fields: Record<string, string> = {};
      for (let index = 0; index < 25; index++) fields[`bad-${index}`] = '{';
      fields.good = JSON.stringify(registration('good'));
      await peer.hset(`${store.prefix}registrations`, fields);
      assert.deepEqual(await store.load(), [registration('good')]);
      assert.equal(reports.length, 11, reasons());
      assert.match(reports[10]!.reason, /15 more invalid registrations skipped \(25 in all\)/);
      await peer.del(`${store.prefix}registrations`);
    });

    it('does not see the records of another prefix', async () => {
      const one = open();
      const other = open();
      one.save(registration('a'));
      one.saveObservation(observation('o'));
      one.saveQueued(queued('q'));
      await one.flush();
      assert.deepEqual(await other.load(), []);
      assert.deepEqual(await other.loadObservations(), []);
      assert.deepEqual(await other.loadQueue(), []);
      assert.deepEqual(await peer.keys(`${other.prefix}*`), []);
      assert.equal((await peer.keys(`${one.prefix}*`)).length, 3);
      await peer.del(`${one.prefix}registrations`, `${one.prefix}observations`, `${one.prefix}queue`);
    });

    it('writes 10,000 saves made in one tick in one round trip, and flush() resolves once they are acknowledged', async () => {
      const store = open();
      await store.load(); // connected
      await peer.config('RESETSTAT');
      for (let index = 0; index < 10_000; index++) store.save(registration(`r${index}`));
      await store.flush();
      assert.equal(await peer.hlen(`${store.prefix}registrations`), 10_000);
      assert.deepEqual(JSON.parse((await peer.hget(`${store.prefix}registrations`, 'r9999'))!), registration('r9999'));
      // one pipeline of HSETs of 1,000 fields each, not 10,000 commands
      const calls = /cmdstat_hset:calls=(\d+)/.exec(await peer.info('commandstats'));
      assert.ok(calls, 'HSET was called');
      assert.ok(Number(calls[1]) <= 10, `HSET calls: ${calls[1]}`);
      await peer.del(`${store.prefix}registrations`);
    });

    it('puts a write cut off by a lost connection back, behind newer changes to the same ids', async () => {
      const store = open({ connectTimeout: 500 });
      await store.load();
      store.save(registration('a'));
      store.save(registration('b'));
      // Redis holds the store's HSET unanswered; then its connection is cut
      await peer.client('PAUSE', 30_000, 'WRITE');
      const flushed = store.flush();
      while (!/cmd=hset/.test(String(await peer.client('LIST')))) await new Promise((resolve) => setTimeout(resolve, 10));
      store.remove('a');
      await peer.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      await peer.client('UNPAUSE');
      await flushed; // an attempt that failed: it resolves all the same
      await until(() => reports.length >= 2, 'the loss and the return to be reported');
      await store.flush();
      assert.deepEqual(await peer.hkeys(`${store.prefix}registrations`), ['b']);
      assert.match(reports[0]!.reason, /^lost the connection to Redis/);
      assert.match(reports[1]!.reason, /^Redis is reachable again/);
      assert.equal(reports.length, 2, reasons());
      await peer.del(`${store.prefix}registrations`);
    });

    it('treats a Redis that stops answering as lost: connects again and writes once it answers', async function () {
      this.timeout(120_000);
      const store = open({ connectTimeout: 500 });
      await store.load();
      await peer.client('PAUSE', 60_000, 'WRITE');
      try {
        store.save(registration('a'));
        // the HSET gets no answer: after 10 s the flush gives up, and the store reconnects
        await store.flush();
        await until(() => reports.length >= 2, 'the loss and the return to be reported');
        assert.match(reports[0]!.reason, /^lost the connection to Redis: no answer within 10000 ms/);
        assert.match(reports[1]!.reason, /^Redis is reachable again: 1 change waiting/);
      } finally {
        await peer.client('UNPAUSE');
      }
      await store.flush();
      assert.deepEqual(await peer.hkeys(`${store.prefix}registrations`), ['a']);
      await peer.del(`${store.prefix}registrations`);
    });

    it('names the store by its URL without the password, and takes the password option over the URL’s', async () => {
      // a server of its own: it gets a password
      const locked = await startRedis();
      const admin = new Redis(locked.url);
      try {
        const password = 's3cret@:/%20';
        await admin.config('SET', 'requirepass', password);
        const url = `redis://:wrong@127.0.0.1:${locked.port}/0`;
        const refused = new RedisStore({ url, connectTimeout: 500, onError: (error) => reports.push(error) });
        stores.push(refused);
        const error = await refused.load().then(
          () => assert.fail('loaded with a wrong password'),
          (error: unknown) => error,
        );
        assert.ok(error instanceof StoreError);
        assert.equal(error.file, `redis://127.0.0.1:${locked.port}/0`);
        assert.equal(refused.url, error.file);
        assert.doesNotMatch(`${error.message} ${error.reason}`, /wrong/);
        assert.match(error.reason, /cannot reach Redis: WRONGPASS/);

        const store = new RedisStore({ url, password, onError: (error) => reports.push(error) });
        stores.push(store);
        store.save(registration('a'));
        await store.flush();
        assert.deepEqual(await store.load(), [registration('a')]);
      } finally {
        admin.disconnect();
        await locked.stop();
      }
    });

    it('rejects load() with a StoreError within connectTimeout when Redis is not there, and closes', async () => {
      const port = await freeTcpPort(); // nothing listens there
      const store = open({ url: `redis://127.0.0.1:${port}`, connectTimeout: 300 });
      const started = Date.now();
      await assert.rejects(store.load(), (error: unknown) => {
        assert.ok(error instanceof StoreError, String(error));
        assert.equal(error.file, `redis://127.0.0.1:${port}`);
        assert.match(error.reason, /^cannot reach Redis: .*ECONNREFUSED.*\(not ready within 300 ms\)/);
        return true;
      });
      await assert.rejects(store.loadObservations(), StoreError);
      await assert.rejects(store.loadQueue(), StoreError);
      // it gives up instead of hanging (the bound is generous: a busy machine is slow)
      assert.ok(Date.now() - started < 30_000, `${Date.now() - started} ms`);
      // a change waits; flush() and close() resolve, close() says what stays unwritten
      store.save(registration('a'));
      await store.flush();
      await store.close();
      assert.match(reasons(), /closed with 1 change not written/);
    });

    it('keeps changes while Redis is away, writes them when it is back, and reports the loss and the return once each', async function () {
      this.timeout(120_000);
      const own = await startRedis();
      try {
        const store = new RedisStore({ url: own.url, prefix: 'p:', connectTimeout: 500, onError: (error) => reports.push(error) });
        stores.push(store);
        store.save(registration('before'));
        await store.flush();

        await own.stop();
        await until(() => reports.length > 0, 'the loss to be reported');
        assert.match(reports[0]!.reason, /^lost the connection to Redis/);
        for (let round = 0; round < 5; round++) {
          store.save(registration('during', { updatedAt: round }));
          store.save(registration(`during-${round}`));
          store.remove(`during-${round}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        store.saveQueued(queued('q'));
        // flush() while Redis is away resolves (within connectTimeout), changes still waiting
        await store.flush();

        await own.restart();
        const check = new Redis(own.url);
        try {
          // the restarted server kept nothing (no persistence): what it holds came from the store's wait
          await until(() => reports.length >= 2, 'the return to be reported');
          await store.flush();
          assert.deepEqual(await check.hkeys('p:registrations'), ['during']);
          assert.deepEqual(JSON.parse((await check.hget('p:registrations', 'during'))!), registration('during', { updatedAt: 4 }));
          assert.deepEqual(await check.hkeys('p:queue'), ['q']);
        } finally {
          check.disconnect();
        }
        assert.equal(reports.length, 2, reasons());
        assert.match(reports[1]!.reason, /^Redis is reachable again: 7 changes waiting are written now/);
      } finally {
        await Promise.all(stores.map((store) => store.close()));
        await own.stop();
      }
    });

    it('close() gives up on an unreachable Redis after a bounded wait, reporting what stays unwritten', async () => {
      const own = await startRedis();
      const store = new RedisStore({ url: own.url, onError: (error) => reports.push(error) });
      stores.push(store);
      await store.load();
      await own.stop();
      await until(() => reports.length > 0, 'the loss to be reported');
      store.save(registration('a'));
      store.saveObservation(observation('o'));
      const started = Date.now();
      await store.close();
      assert.ok(Date.now() - started < 30_000, `${Date.now() - started} ms`);
      assert.match(reports.at(-1)!.reason, /^closed with 2 changes not written/);
      store.save(registration('b'));
      assert.match(reports.at(-1)!.reason, /the store is closed: change to registration "b" ignored/);
    });

    it('gives a client on the same settings for pub/sub (duplicate)', async () => {
      const store = open();
      const subscriber = store.duplicate({ enableOfflineQueue: true });
      const publisher = store.duplicate({ enableOfflineQueue: true });
      try {
        const received = new Promise<string>((resolve) => subscriber.on('message', (_channel: string, message: string) => resolve(message)));
        await subscriber.subscribe(`${store.prefix}events`);
        assert.equal(await publisher.publish(`${store.prefix}events`, 'hello'), 1);
        assert.equal(await received, 'hello');
      } finally {
        subscriber.disconnect();
        publisher.disconnect();
      }
    });

    it('refuses bad options when made', () => {
      assert.throws(() => new RedisStore({ url: 'http://127.0.0.1:6379' }), /redis:\/\/ or rediss:\/\//);
      assert.throws(() => new RedisStore({ url: '' }), TypeError);
      assert.throws(() => new RedisStore(undefined as unknown as RedisStoreOptions), TypeError);
      assert.throws(() => new RedisStore({ url: redis.url, connectTimeout: 0 }), /connectTimeout/);
      assert.throws(() => new RedisStore({ url: redis.url, prefix: 3 as unknown as string }), /prefix/);
    });
  });
});

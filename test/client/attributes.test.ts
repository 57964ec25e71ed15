import assert from 'node:assert/strict';
import {
  AttributeError,
  AttributeStore,
  changeConditionsMet,
  checkAttributeConsistency,
  checkAttributeLevel,
  effectivePmax,
  evaluationDelay,
  parseAttributeQuery,
  schedule,
  type NotificationAttributes,
} from '../../lib/client/attributes';
import { LwM2MPath } from '../../lib/path';

const path = (text: string) => LwM2MPath.parse(text);

/** Asserts that `fn` throws an AttributeError about `attribute` whose message matches `reason`. */
function assertAttributeError(fn: () => unknown, attribute: string | undefined, reason: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof AttributeError, `expected an AttributeError, got ${String(error)}`);
    assert.equal(error.name, 'AttributeError');
    assert.equal(error.attribute, attribute);
    if (attribute !== undefined) assert.match(error.message, new RegExp(`\\b${attribute}\\b`));
    assert.match(error.message, reason);
    return true;
  });
}

describe('notification attributes', () => {
  describe('parseAttributeQuery', () => {
    it('sets every attribute from name=value items', () => {
      const { set, unset } = parseAttributeQuery([
        'pmin=10',
        'pmax=60',
        'gt=20.5',
        'lt=-3.25',
        'st=0.5',
        'epmin=1',
        'epmax=30',
        'edge=1',
        'con=0',
        'hqmax=5',
      ]);
      assert.deepEqual(set, { pmin: 10, pmax: 60, gt: 20.5, lt: -3.25, st: 0.5, epmin: 1, epmax: 30, edge: 1, con: 0, hqmax: 5 });
      assert.deepEqual(unset, []);
    });

    it('unsets attributes given without a value', () => {
      const { set, unset } = parseAttributeQuery(['st', 'pmin=0', 'gt']);
      assert.deepEqual(set, { pmin: 0 });
      assert.deepEqual(unset, ['st', 'gt']);
    });

    it('accepts leading zeros as the 1*DIGIT grammar does', () => {
      assert.deepEqual(parseAttributeQuery(['pmin=007', 'gt=01.50']).set, { pmin: 7, gt: 1.5 });
    });

    const bad: Array<[string[], string | undefined, RegExp]> = [
      [['foo=1'], 'foo', /unknown notification attribute "foo"/],
      [['PMIN=1'], 'PMIN', /unknown notification attribute/],
      [['dim=2'], 'dim', /unknown notification attribute/],
      [['=5'], undefined, /empty query item/],
      [['pmin='], 'pmin', /empty value.*without "="/],
      [['pmin=abc'], 'pmin', /"abc" is not a decimal number/],
      [['gt=1e3'], 'gt', /"1e3" is not a decimal number/],
      [['gt=.5'], 'gt', /not a decimal number/],
      [['lt=5.'], 'lt', /not a decimal number/],
      [['gt=+5'], 'gt', /not a decimal number/],
      [['gt=Infinity'], 'gt', /not a decimal number/],
      [['pmin=-5'], 'pmin', /must not be negative/],
      [['pmax=-1'], 'pmax', /must not be negative/],
      [['epmin=-1'], 'epmin', /must not be negative/],
      [['hqmax=-1'], 'hqmax', /must not be negative/],
      [['pmin=1.5'], 'pmin', /whole number of seconds/],
      [['epmax=2.5'], 'epmax', /whole number of seconds/],
      [['hqmax=0.5'], 'hqmax', /whole number/],
      [['pmax=99999999999999999999'], 'pmax', /whole number of seconds/],
      [['st=-0.1'], 'st', /must not be negative/],
      [['edge=2'], 'edge', /must be 0 or 1/],
      [['con=true'], 'con', /must be 0 or 1 \(got "true"\)/],
      [['con=1.0'], 'con', /must be 0 or 1/],
      [['edge='], 'edge', /empty value/],
      [['pmin=10.0'], 'pmin', /whole number of seconds \(got "10.0"\)/],
      [['pmin=1', 'pmin=2'], 'pmin', /more than once/],
      [['pmin=1', 'pmin'], 'pmin', /more than once/],
    ];
    for (const [query, attribute, reason] of bad) {
      it(`rejects ${JSON.stringify(query)} saying why`, () => {
        assertAttributeError(() => parseAttributeQuery(query), attribute, reason);
      });
    }

    it('rejects a request without any attribute', () => {
      assertAttributeError(() => parseAttributeQuery([]), undefined, /at least one attribute/);
    });
  });

  describe('checkAttributeLevel', () => {
    it('allows the period-like attributes at every level from object to resource instance', () => {
      const attrs: NotificationAttributes = { pmin: 1, pmax: 2, epmin: 1, epmax: 2, con: 1, hqmax: 3 };
      for (const text of ['/3', '/3/0', '/3/0/9', '/3/0/7/1']) {
        assert.doesNotThrow(() => checkAttributeLevel(path(text), attrs), text);
        assert.doesNotThrow(() => checkAttributeLevel(path(text), attrs, 'String'), text);
      }
    });

    it('refuses every attribute on the root path', () => {
      assertAttributeError(() => checkAttributeLevel(LwM2MPath.ROOT, { pmin: 1 }), 'pmin', /cannot be set on "\/"/);
    });

    for (const name of ['gt', 'lt', 'st', 'edge'] as const) {
      for (const text of ['/3', '/3/0']) {
        it(`refuses ${name} on ${text}`, () => {
          assertAttributeError(
            () => checkAttributeLevel(path(text), { [name]: 1 }),
            name,
            /only be set on a resource or resource instance/,
          );
        });
      }
    }

    it('allows gt/lt/st on numeric resources and resource instances, in either type spelling', () => {
      const attrs: NotificationAttributes = { gt: 10, lt: 1, st: 2 };
      for (const type of ['integer', 'unsignedInteger', 'float', 'Integer', 'Unsigned Integer', 'Float', 'Time']) {
        assert.doesNotThrow(() => checkAttributeLevel(path('/3303/0/5700'), attrs, type), type);
        assert.doesNotThrow(() => checkAttributeLevel(path('/3/0/7/1'), attrs, type), type);
      }
    });

    for (const type of ['string', 'String', 'boolean', 'Opaque', 'Objlnk']) {
      it(`refuses gt/lt/st on a ${type} resource`, () => {
        for (const name of ['gt', 'lt', 'st'] as const) {
          assertAttributeError(
            () => checkAttributeLevel(path('/3/0/0'), { [name]: 1 }, type),
            name,
            new RegExp(`only to numeric resources; /3/0/0 is of type ${type}`),
          );
        }
      });
    }

    it('allows edge only on a Boolean resource', () => {
      assert.doesNotThrow(() => checkAttributeLevel(path('/3342/0/5500'), { edge: 1 }, 'boolean'));
      assert.doesNotThrow(() => checkAttributeLevel(path('/3342/0/5500'), { edge: 0 }, 'Boolean'));
      assertAttributeError(
        () => checkAttributeLevel(path('/3303/0/5700'), { edge: 1 }, 'float'),
        'edge',
        /only to Boolean resources/,
      );
    });

    it('does not check the type when it is not known', () => {
      assert.doesNotThrow(() => checkAttributeLevel(path('/3/0/0'), { gt: 1, edge: 1 }));
    });
  });

  describe('checkAttributeConsistency', () => {
    it('accepts valid combinations', () => {
      for (const attrs of [
        {},
        { lt: 10, gt: 20 },
        { lt: 10, gt: 20, st: 4.9 },
        { lt: -20, gt: -10 },
        { st: 5 },
        { gt: 5 },
        { pmin: 10, pmax: 10 },
        { pmin: 10, pmax: 60 },
        { pmin: 10, pmax: 0 }, // pmax 0 means "no maximum period"
        { epmin: 1, epmax: 2 },
      ] as NotificationAttributes[]) {
        assert.doesNotThrow(() => checkAttributeConsistency(attrs), JSON.stringify(attrs));
      }
    });

    const bad: Array<[NotificationAttributes, string, RegExp]> = [
      [{ lt: 20, gt: 10 }, 'lt', /lt \(20\) must be less than gt \(10\)/],
      [{ lt: 10, gt: 10 }, 'lt', /must be less than gt/],
      [{ lt: 10, gt: 20, st: 5 }, 'st', /lt \+ 2\*st \(10 \+ 2\*5\) must be less than gt \(20\)/],
      [{ lt: 10, gt: 20, st: 6 }, 'st', /must be less than gt/],
      [{ pmin: 60, pmax: 10 }, 'pmax', /pmax \(10\) must be greater than or equal to pmin \(60\)/],
      [{ epmin: 5, epmax: 5 }, 'epmax', /epmax \(5\) must be greater than epmin \(5\)/],
      [{ epmin: 6, epmax: 5 }, 'epmax', /must be greater than epmin/],
      [{ pmin: -1 }, 'pmin', /must not be negative/],
      [{ st: -1 }, 'st', /must not be negative/],
      [{ gt: Number.NaN }, 'gt', /not a finite number/],
      [{ edge: 3 as 0 }, 'edge', /must be 0 or 1/],
    ];
    for (const [attrs, attribute, reason] of bad) {
      it(`rejects ${JSON.stringify(attrs)} saying why`, () => {
        assertAttributeError(() => checkAttributeConsistency(attrs), attribute, reason);
      });
    }
  });

  describe('AttributeStore', () => {
    it('keeps what was written per path, and own() returns a copy', () => {
      const store = new AttributeStore();
      store.write(path('/3/0'), parseAttributeQuery(['pmin=10', 'pmax=60']));
      store.write(path('/3/0/7'), parseAttributeQuery(['gt=50', 'lt=42.2']));
      assert.deepEqual(store.own(path('/3/0')), { pmin: 10, pmax: 60 });
      assert.deepEqual(store.own(path('/3/0/7')), { gt: 50, lt: 42.2 });
      assert.deepEqual(store.own(path('/3')), {});
      store.own(path('/3/0')).pmin = 99;
      assert.equal(store.own(path('/3/0')).pmin, 10);
    });

    it('merges a later write with what is there and unsets bare names', () => {
      const store = new AttributeStore();
      store.write(path('/3/0/9'), parseAttributeQuery(['pmin=5', 'st=2']));
      store.write(path('/3/0/9'), parseAttributeQuery(['pmax=30', 'st']));
      assert.deepEqual(store.own(path('/3/0/9')), { pmin: 5, pmax: 30 });
      store.write(path('/3/0/9'), parseAttributeQuery(['pmin', 'pmax']));
      assert.deepEqual(store.own(path('/3/0/9')), {});
    });

    it('does not keep the caller\'s object', () => {
      const store = new AttributeStore();
      const set: NotificationAttributes = { pmin: 1 };
      store.write(path('/3'), { set, unset: [] });
      set.pmin = 1000;
      assert.deepEqual(store.own(path('/3')), { pmin: 1 });
    });

    it('validates the merged result and commits nothing when it is invalid', () => {
      const store = new AttributeStore();
      store.write(path('/3303/0/5700'), parseAttributeQuery(['lt=10', 'gt=20', 'pmin=5']));
      // each write alone is fine, but merged with what is stored it breaks lt + 2*st < gt
      assertAttributeError(
        () => store.write(path('/3303/0/5700'), parseAttributeQuery(['st=5', 'pmax=60'])),
        'st',
        /lt \+ 2\*st/,
      );
      assert.deepEqual(store.own(path('/3303/0/5700')), { lt: 10, gt: 20, pmin: 5 });
      assertAttributeError(
        () => store.write(path('/3303/0/5700'), parseAttributeQuery(['pmax=1'])),
        'pmax',
        /greater than or equal to pmin/,
      );
      assert.deepEqual(store.own(path('/3303/0/5700')), { lt: 10, gt: 20, pmin: 5 });
      // unsetting lt makes the same step acceptable
      store.write(path('/3303/0/5700'), parseAttributeQuery(['st=5', 'lt']));
      assert.deepEqual(store.own(path('/3303/0/5700')), { gt: 20, pmin: 5, st: 5 });
    });

    it('refuses resource-only attributes above the resource level and the root path', () => {
      const store = new AttributeStore();
      assertAttributeError(() => store.write(path('/3/0'), { set: { gt: 1 }, unset: [] }), 'gt', /resource/);
      assertAttributeError(() => store.write(LwM2MPath.ROOT, { set: { pmin: 1 }, unset: [] }), 'pmin', /"\/"/);
      assert.deepEqual(store.own(path('/3/0')), {});
    });

    it('refuses an attribute that is both set and unset', () => {
      const store = new AttributeStore();
      assertAttributeError(() => store.write(path('/3'), { set: { pmin: 1 }, unset: ['pmin'] }), 'pmin', /both set and unset/);
      assert.deepEqual(store.own(path('/3')), {});
    });

    it('computes effective attributes: defaults, then object, instance, resource, resource instance', () => {
      const store = new AttributeStore();
      store.write(path('/3'), parseAttributeQuery(['pmin=10', 'epmax=100']));
      store.write(path('/3/0'), parseAttributeQuery(['pmax=60']));
      store.write(path('/3/0/7'), parseAttributeQuery(['pmin=20', 'gt=50', 'lt=42.2']));
      store.write(path('/3/0/7/1'), parseAttributeQuery(['lt=45']));
      store.write(path('/3/1'), parseAttributeQuery(['pmin=1']));

      const defaults = { pmin: 1, pmax: 300 };
      assert.deepEqual(store.effective(path('/3'), defaults), { pmin: 10, pmax: 300, epmax: 100 });
      assert.deepEqual(store.effective(path('/3/0'), defaults), { pmin: 10, pmax: 60, epmax: 100 });
      assert.deepEqual(store.effective(path('/3/0/7'), defaults), { pmin: 20, pmax: 60, epmax: 100, gt: 50, lt: 42.2 });
      assert.deepEqual(store.effective(path('/3/0/7/1'), defaults), { pmin: 20, pmax: 60, epmax: 100, gt: 50, lt: 45 });
      // a sibling resource instance and a sibling instance do not see each other's attributes
      assert.deepEqual(store.effective(path('/3/0/7/0'), defaults), { pmin: 20, pmax: 60, epmax: 100, gt: 50, lt: 42.2 });
      assert.deepEqual(store.effective(path('/3/1/7'), defaults), { pmin: 1, pmax: 300, epmax: 100 });
      // another object only gets the defaults, and no defaults means nothing
      assert.deepEqual(store.effective(path('/4/0/2'), defaults), { pmin: 1, pmax: 300 });
      assert.deepEqual(store.effective(path('/4/0/2')), {});
      assert.deepEqual(store.effective(path('/4/0/2'), { pmax: 30 }), { pmax: 30 });
    });

    it('falls back to the upper level once a lower level unsets its value', () => {
      const store = new AttributeStore();
      store.write(path('/3'), parseAttributeQuery(['pmin=10']));
      store.write(path('/3/0/7'), parseAttributeQuery(['pmin=20']));
      assert.equal(store.effective(path('/3/0/7')).pmin, 20);
      store.write(path('/3/0/7'), parseAttributeQuery(['pmin']));
      assert.equal(store.effective(path('/3/0/7')).pmin, 10);
    });

    it('clears a path and everything below it, and nothing else', () => {
      const store = new AttributeStore();
      store.write(path('/3'), parseAttributeQuery(['pmin=1']));
      store.write(path('/3/0'), parseAttributeQuery(['pmin=2']));
      store.write(path('/3/0/7'), parseAttributeQuery(['pmin=3']));
      store.write(path('/3/0/7/1'), parseAttributeQuery(['pmin=4']));
      store.write(path('/3/1'), parseAttributeQuery(['pmin=5']));
      store.write(path('/3/10'), parseAttributeQuery(['pmin=6']));
      store.clear(path('/3/0'));
      assert.deepEqual(store.own(path('/3/0')), {});
      assert.deepEqual(store.own(path('/3/0/7')), {});
      assert.deepEqual(store.own(path('/3/0/7/1')), {});
      assert.deepEqual(store.own(path('/3')), { pmin: 1 });
      assert.deepEqual(store.own(path('/3/1')), { pmin: 5 });
      assert.deepEqual(store.own(path('/3/10')), { pmin: 6 });
    });
  });

  describe('changeConditionsMet', () => {
    it('without conditions, notifies on any change and only on a change', () => {
      assert.equal(changeConditionsMet(1, 2, {}), true);
      assert.equal(changeConditionsMet(1, 1, {}), false);
      assert.equal(changeConditionsMet(true, false, {}), true);
      assert.equal(changeConditionsMet(false, false, {}), false);
      // timing attributes are not change conditions
      assert.equal(changeConditionsMet(1, 1.5, { pmin: 10, pmax: 20 }), true);
    });

    it('counts a first value (nothing notified yet) as a change', () => {
      assert.equal(changeConditionsMet(undefined, 5, { gt: 10 }), true);
      assert.equal(changeConditionsMet(undefined, false, { edge: 1 }), true);
    });

    it('gt: notifies when the value crosses the threshold upwards and downwards, not while it stays on one side', () => {
      const attrs = { gt: 20 };
      assert.equal(changeConditionsMet(19, 21, attrs), true); // rises above
      assert.equal(changeConditionsMet(21, 19, attrs), true); // falls back below
      assert.equal(changeConditionsMet(21, 30, attrs), false); // stays above
      assert.equal(changeConditionsMet(10, 19, attrs), false); // stays below
      assert.equal(changeConditionsMet(19, 20, attrs), false); // reaching it is not exceeding it
      assert.equal(changeConditionsMet(20, 20.1, attrs), true);
    });

    it('lt: notifies when the value crosses the threshold downwards and upwards', () => {
      const attrs = { lt: -5 };
      assert.equal(changeConditionsMet(0, -6, attrs), true);
      assert.equal(changeConditionsMet(-6, 0, attrs), true);
      assert.equal(changeConditionsMet(-6, -10, attrs), false);
      assert.equal(changeConditionsMet(0, 3, attrs), false);
      assert.equal(changeConditionsMet(-4, -5, attrs), false); // reaching it is not going below it
    });

    it('st: notifies when the value moved at least st from the last notified value, in either direction', () => {
      const attrs = { st: 2 };
      assert.equal(changeConditionsMet(10, 12, attrs), true);
      assert.equal(changeConditionsMet(10, 8, attrs), true);
      assert.equal(changeConditionsMet(10, 11.9, attrs), false);
      assert.equal(changeConditionsMet(10, 8.5, attrs), false);
      // 0.3 - 0.1 is 0.19999999999999998 in binary floating point, but it is a step of 0.2
      assert.equal(changeConditionsMet(0.1, 0.3, { st: 0.2 }), true);
      assert.equal(changeConditionsMet(0.1, 0.29, { st: 0.2 }), false);
      assert.equal(changeConditionsMet(1e6 + 0.1, 1e6 + 0.3, { st: 0.2 }), true);
      assert.equal(changeConditionsMet(1e6 + 0.1, 1e6 + 0.2999, { st: 0.2 }), false);
      assert.equal(changeConditionsMet(10, 10.001, { st: 0 }), true);
    });

    it('combines gt, lt and st with OR: any one met is enough', () => {
      const attrs = { lt: 10, gt: 30, st: 5 };
      assert.equal(changeConditionsMet(20, 26, attrs), true); // st only
      assert.equal(changeConditionsMet(29, 31, attrs), true); // gt only
      assert.equal(changeConditionsMet(11, 9, attrs), true); // lt only
      assert.equal(changeConditionsMet(20, 24, attrs), false); // none
      assert.equal(changeConditionsMet(5, 35, attrs), true); // all three
    });

    it('edge=1 notifies on false → true only, edge=0 on true → false only', () => {
      assert.equal(changeConditionsMet(false, true, { edge: 1 }), true);
      assert.equal(changeConditionsMet(true, false, { edge: 1 }), false);
      assert.equal(changeConditionsMet(true, false, { edge: 0 }), true);
      assert.equal(changeConditionsMet(false, true, { edge: 0 }), false);
      assert.equal(changeConditionsMet(true, true, { edge: 1 }), false);
    });

    it('ignores conditions that do not apply to the value type', () => {
      assert.equal(changeConditionsMet(false, true, { gt: 100, st: 50 }), true);
      assert.equal(changeConditionsMet(1, 2, { edge: 1 }), true);
      assert.equal(changeConditionsMet(1, true, { edge: 0 }), true);
    });
  });

  describe('schedule', () => {
    const T = 1_000_000; // the time of the last notification, ms

    it('sends a change at once when pmin has passed (or there is none)', () => {
      assert.deepEqual(schedule({}, T, T, true), { notifyNow: true });
      assert.deepEqual(schedule({ pmin: 10 }, T, T + 10_000, true), { notifyNow: true });
      assert.deepEqual(schedule({ pmin: 10 }, T, T + 50_000, true), { notifyNow: true });
    });

    it('holds a pending change until pmin expires, then sends it', () => {
      assert.deepEqual(schedule({ pmin: 10 }, T, T + 3_000, true), { notifyNow: false, nextCheckIn: 7_000 });
      assert.deepEqual(schedule({ pmin: 10, pmax: 60 }, T, T + 3_000, true), { notifyNow: false, nextCheckIn: 7_000 });
      assert.deepEqual(schedule({ pmin: 10, pmax: 60 }, T, T + 7_000 + 3_000, true), {
        notifyNow: true,
        nextCheckIn: 60_000,
      });
    });

    it('without a change, waits for pmax and then notifies anyway', () => {
      assert.deepEqual(schedule({ pmin: 10, pmax: 60 }, T, T + 15_000, false), { notifyNow: false, nextCheckIn: 45_000 });
      assert.deepEqual(schedule({ pmax: 60 }, T, T + 60_000, false), { notifyNow: true, nextCheckIn: 60_000 });
      assert.deepEqual(schedule({ pmax: 60 }, T, T + 75_000, false), { notifyNow: true, nextCheckIn: 60_000 });
      assert.deepEqual(schedule({ pmax: 60 }, T, T + 59_999, false), { notifyNow: false, nextCheckIn: 1 });
    });

    it('has nothing to wait for without pmax, epmax or a pending change', () => {
      assert.deepEqual(schedule({ pmin: 10 }, T, T + 1_000, false), { notifyNow: false });
      assert.deepEqual(schedule({}, T, T + 1_000_000, false), { notifyNow: false });
    });

    it('ignores a pmax of 0 and a pmax below pmin', () => {
      assert.equal(effectivePmax({ pmax: 0 }), undefined);
      assert.equal(effectivePmax({ pmin: 60, pmax: 10 }), undefined);
      assert.equal(effectivePmax({ pmin: 10, pmax: 10 }), 10);
      assert.equal(effectivePmax({ pmax: 10 }), 10);
      assert.deepEqual(schedule({ pmax: 0 }, T, T + 1_000_000, false), { notifyNow: false });
      // pmax=10 < pmin=60 (e.g. pmax inherited from the object, pmin set on the resource): only pmin counts
      assert.deepEqual(schedule({ pmin: 60, pmax: 10 }, T, T + 20_000, false), { notifyNow: false });
      assert.deepEqual(schedule({ pmin: 60, pmax: 10 }, T, T + 20_000, true), { notifyNow: false, nextCheckIn: 40_000 });
    });

    it('includes the epmax deadline for the next evaluation', () => {
      assert.deepEqual(schedule({ epmax: 5 }, T, T + 1_000, false), { notifyNow: false, nextCheckIn: 5_000 });
      assert.deepEqual(schedule({ pmax: 60, epmax: 5 }, T, T + 58_000, false), { notifyNow: false, nextCheckIn: 2_000 });
      assert.deepEqual(schedule({ pmin: 10, epmax: 5 }, T, T + 1_000, true), { notifyNow: false, nextCheckIn: 5_000 });
      assert.deepEqual(schedule({ pmax: 60, epmax: 5 }, T, T + 60_000, false), { notifyNow: true, nextCheckIn: 5_000 });
    });

    it('does not hold notifications forever when the clock steps back', () => {
      assert.deepEqual(schedule({ pmin: 10 }, T, T - 5_000, true), { notifyNow: false, nextCheckIn: 10_000 });
    });
  });

  describe('evaluationDelay', () => {
    const T0 = 5_000_000; // the time of the last evaluation, ms

    it('keeps evaluations at least epmin apart', () => {
      assert.equal(evaluationDelay({}, T0, T0), 0);
      assert.equal(evaluationDelay({ epmin: 5 }, T0, T0 + 2_000), 3_000);
      assert.equal(evaluationDelay({ epmin: 5 }, T0, T0 + 5_000), 0);
      assert.equal(evaluationDelay({ epmin: 5 }, T0, T0 + 9_000), 0);
    });
  });
});

import assert from 'node:assert/strict';
import { comparePaths, formatPath, LwM2MPath, parsePath, pathContains, PathError } from '../lib';

describe('LwM2M paths', () => {
  it('parses every level from the root to a resource instance', () => {
    assert.deepEqual(parsePath('/').ids, []);
    assert.equal(parsePath('/').level, 'root');
    assert.deepEqual(parsePath('/3').ids, [3]);
    assert.equal(parsePath('/3').level, 'object');
    assert.deepEqual(parsePath('/3/0').ids, [3, 0]);
    assert.equal(parsePath('/3/0').level, 'instance');
    assert.deepEqual(parsePath('/3/0/7').ids, [3, 0, 7]);
    assert.equal(parsePath('/3/0/7').level, 'resource');
    assert.deepEqual(parsePath('/3/0/7/1').ids, [3, 0, 7, 1]);
    assert.equal(parsePath('/3/0/7/1').level, 'resourceInstance');
    assert.deepEqual(parsePath('/65535/65535/65535/65535').ids, [65535, 65535, 65535, 65535]);
  });

  it('exposes the ids by name', () => {
    const path = parsePath('/3303/1/5700/2');
    assert.equal(path.objectId, 3303);
    assert.equal(path.instanceId, 1);
    assert.equal(path.resourceId, 5700);
    assert.equal(path.resourceInstanceId, 2);
    assert.equal(parsePath('/3').instanceId, undefined);
  });

  const bad: Array<[string, RegExp]> = [
    ['/3/x', /object instance id "x" is not a decimal number/],
    ['/65536', /object id 65536 is above 65535/],
    ['3/0', /must start with "\/"/],
    ['', /empty/],
    ['/3//0', /empty segment where the object instance id should be/],
    ['/3/0/', /empty segment where the resource id should be/],
    ['//', /empty segment where the object id should be/],
    ['/3/0/7/1/2', /at most 4 segments/],
    ['/-1', /"-1" is not a decimal number/],
    ['/3/+1', /"\+1" is not a decimal number/],
    ['/3/1.5', /"1.5" is not a decimal number/],
    ['/3/ 0', /" 0" is not a decimal number/],
    ['/03', /leading zero/],
    ['/3/0/99999999999999999999', /above 65535/],
  ];
  for (const [text, reason] of bad) {
    it(`rejects ${JSON.stringify(text)} with a PathError that says why`, () => {
      assert.throws(
        () => parsePath(text),
        (error: unknown) => error instanceof PathError && error.input === text && reason.test(error.message),
      );
    });
  }

  it('rejects a non-string with a PathError', () => {
    assert.throws(() => parsePath(3 as unknown as string), PathError);
  });

  it('formats back to the same text, and from ids', () => {
    for (const text of ['/', '/3', '/3/0', '/3/0/7', '/3/0/7/1']) assert.equal(formatPath(parsePath(text)), text);
    assert.equal(formatPath([3303, 0, 5700]), '/3303/0/5700');
    assert.equal(String(LwM2MPath.of()), '/');
    assert.equal(JSON.stringify({ path: parsePath('/3/0') }), '{"path":"/3/0"}');
    assert.throws(() => LwM2MPath.of(3, 70000), PathError);
    assert.throws(() => LwM2MPath.of(1, 2, 3, 4, 5), PathError);
    assert.throws(() => LwM2MPath.of(1.5), PathError);
  });

  it('tests containment: a path contains itself and everything below it', () => {
    assert.ok(pathContains('/', '/3/0/9'));
    assert.ok(pathContains('/3', '/3/0/9'));
    assert.ok(pathContains('/3/0/9', '/3/0/9'));
    assert.ok(pathContains('/3/0/7', '/3/0/7/1'));
    assert.ok(!pathContains('/3/0/9', '/3/0'));
    assert.ok(!pathContains('/3/0', '/3/1/0'));
    assert.ok(!pathContains('/3', '/33'));
    assert.ok(!pathContains('/3/0/1', '/3/0/10'));
  });

  it('compares id by id, a parent before its children', () => {
    const sorted = ['/4', '/3/0/10', '/3', '/3/0/9', '/', '/3/0', '/3/1', '/3/0/9/0']
      .map(parsePath)
      .sort(comparePaths)
      .map(String);
    assert.deepEqual(sorted, ['/', '/3', '/3/0', '/3/0/9', '/3/0/9/0', '/3/0/10', '/3/1', '/4']);
    assert.ok(parsePath('/3/0').equals(parsePath('/3/0')));
    assert.ok(!parsePath('/3/0').equals(parsePath('/3')));
  });

  it('navigates: child, parent and relative ids', () => {
    assert.equal(String(parsePath('/3/0').child(9)), '/3/0/9');
    assert.equal(String(parsePath('/3/0/9').parent()), '/3/0');
    assert.equal(String(parsePath('/').parent()), '/');
    assert.deepEqual(parsePath('/3/0').relative(parsePath('/3/0/7/1')), [7, 1]);
    assert.throws(() => parsePath('/3/0').relative(parsePath('/4/0')), PathError);
    assert.throws(() => parsePath('/3/0/7/1').child(0), PathError);
  });
});

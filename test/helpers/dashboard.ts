/**
 * FlowFuse Dashboard 2 (`@flowfuse/node-red-dashboard`, a development dependency) for the flows that
 * draw with it, such as the example "Fleet dashboard": its node modules, loaded as Node-RED loads an
 * installed palette. A flow with ui-* nodes and no dashboard installed is a failure, never a skip.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';

export const DASHBOARD = '@flowfuse/node-red-dashboard';

/** Whether a node type is one of Dashboard 2's (ui-base, ui-page, ui-group, ui-table, ...). */
export const isDashboardType = (type: string): boolean => type.startsWith('ui-');

/** The directory the dashboard package is installed in; fails when it is not. */
export function dashboardDir(): string {
  let manifest: string;
  try {
    manifest = require.resolve(`${DASHBOARD}/package.json`);
  } catch {
    assert.fail(`${DASHBOARD} is not installed: it is a development dependency, npm ci (or npm install) installs it`);
  }
  return path.dirname(manifest);
}

/** The node modules of the Dashboard 2 types the flows use (none when they use none). */
export function dashboardNodes(...flows: Array<Array<{ type: string }>>): unknown[] {
  const types = [...new Set(flows.flat().map((node) => node.type).filter(isDashboardType))];
  if (types.length === 0) return [];
  const dir = dashboardDir();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const files = (require(path.join(dir, 'package.json')) as { 'node-red': { nodes: Record<string, string> } })['node-red'].nodes;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return [...new Set(types.map((type) => files[type] ?? assert.fail(`${type} is not a node of ${DASHBOARD}`)))].map((file) => require(path.join(dir, file)));
}

/** The parent's handle on bench/server-devices.js, the load-generating child process: one command at a time, one result back. */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { Command, RunResult } from './server-devices';

export class Generator {
  private constructor(private readonly child: ChildProcess) {}

  static start(): Promise<Generator> {
    const child = fork(path.join(__dirname, 'server-devices.js'), { stdio: 'inherit' });
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve(new Generator(child)));
      child.once('exit', (code) => reject(new Error(`the device process exited with ${code}`)));
    });
  }

  run(command: Command): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: { type: string; result?: RunResult; error?: string }) => {
        this.child.off('message', onMessage);
        if (message.type === 'done') resolve(message.result!);
        else reject(new Error(`the device process failed in ${command.cmd}: ${message.error}`));
      };
      this.child.on('message', onMessage);
      this.child.send(command);
    });
  }

  stop(): void {
    this.child.send({ cmd: 'stop' } satisfies Command);
  }
}

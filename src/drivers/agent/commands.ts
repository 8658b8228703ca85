/**
 * The agent command queue, kept in the node's driver_internal_info so that it lives in the
 * store like everything else: the conductor appends commands, the API hands them to the
 * ramdisk agent one at a time and records results (docs/agent-protocol.md).
 */
import type { Task } from '../interfaces.js';
import { DriverError } from '../interfaces.js';

export type AgentCommandName = 'inspect' | 'erase_devices_metadata' | 'erase_devices' | 'write_image' | 'write_blob' | 'reboot' | 'poweroff';

export interface AgentCommand {
  id: string;
  command: AgentCommandName;
  /** Values are sent as `arg.KEY=VALUE` lines: URL-safe text only. */
  args: Record<string, string | number>;
  status: 'pending' | 'sent' | 'ok' | 'error';
  message?: string;
  data?: unknown;
  queued_at: string;
  finished_at?: string;
}

/** Characters an argument value may contain (the agent refuses anything else). */
export const SAFE_ARG = /^[A-Za-z0-9_.,:/%@+=-]*$/;

export function commandsOf(info: Record<string, unknown>): AgentCommand[] {
  return (info.agent_commands as AgentCommand[] | undefined) ?? [];
}

/** Appends a command for the agent; returns its id. */
export async function queueCommand(task: Task, command: AgentCommandName, args: Record<string, string | number> = {}): Promise<string> {
  for (const [k, v] of Object.entries(args)) {
    if (!/^[a-z_][a-z0-9_]*$/.test(k) || !SAFE_ARG.test(String(v))) throw new DriverError(`agent command ${command}: argument ${k}=${String(v)} has characters the agent cannot take`, 'invalid_parameter');
  }
  const list = commandsOf(task.node.driver_internal_info);
  const id = String(list.length + 1);
  await task.update({ driver_internal_info: { agent_commands: [...list, { id, command, args, status: 'pending', queued_at: new Date().toISOString() }] } });
  return id;
}

/** The last command, if any. */
export function lastCommand(task: Task): AgentCommand | undefined {
  const list = commandsOf(task.node.driver_internal_info);
  return list[list.length - 1];
}

/** Forget earlier commands (a new operation starts). */
export async function resetCommands(task: Task): Promise<void> {
  await task.update({ driver_internal_info: { agent_commands: [], agent_connected: undefined } });
}

/** Whether the agent has contacted the seed since the ramdisk was prepared. */
export function agentConnected(task: Task): boolean {
  return !!task.node.driver_internal_info.agent_connected;
}

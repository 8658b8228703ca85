/**
 * The provision state machine, as data: Ironic's states and transitions (ironic/common/states.py).
 * The API validates every requested change against this table and the conductor moves nodes
 * through it; nothing else decides what may follow what.
 */
export const S = {
  ENROLL: 'enroll', VERIFYING: 'verifying', MANAGEABLE: 'manageable', AVAILABLE: 'available', ACTIVE: 'active',
  DEPLOYING: 'deploying', DEPLOYWAIT: 'wait call-back', DEPLOYFAIL: 'deploy failed',
  DELETING: 'deleting', DELETED: 'deleted', CLEANING: 'cleaning', CLEANWAIT: 'clean wait', CLEANFAIL: 'clean failed',
  ERROR: 'error', INSPECTING: 'inspecting', INSPECTWAIT: 'inspect wait', INSPECTFAIL: 'inspect failed',
  ADOPTING: 'adopting', ADOPTFAIL: 'adopt failed', RESCUE: 'rescue', RESCUING: 'rescuing', RESCUEWAIT: 'rescue wait',
  RESCUEFAIL: 'rescue failed', UNRESCUING: 'unrescuing', UNRESCUEFAIL: 'unrescue failed',
} as const;
export type ProvisionState = (typeof S)[keyof typeof S];

export type ProvisionEvent = 'manage' | 'provide' | 'inspect' | 'clean' | 'deploy' | 'rebuild' | 'delete' | 'abort' | 'adopt'
  | 'rescue' | 'unrescue' | 'done' | 'fail' | 'wait' | 'resume';

/** States a node rests in (no conductor work pending). */
export const STABLE: ReadonlySet<string> = new Set([S.ENROLL, S.MANAGEABLE, S.AVAILABLE, S.ACTIVE, S.ERROR, S.RESCUE]);
/** States where the node waits for its ramdisk agent (timeouts apply). */
export const WAIT_STATES: ReadonlySet<string> = new Set([S.DEPLOYWAIT, S.CLEANWAIT, S.INSPECTWAIT, S.RESCUEWAIT]);
/** States in which a conductor is actively working; if it dies the node moves to the fail state. */
export const ACTIVE_WORK: ReadonlySet<string> = new Set([S.VERIFYING, S.DEPLOYING, S.DELETING, S.CLEANING, S.INSPECTING, S.ADOPTING, S.RESCUING, S.UNRESCUING]);

/** The target_provision_state shown while a node is in each transient state. */
export const TARGET_OF: Readonly<Record<string, string>> = {
  [S.VERIFYING]: S.MANAGEABLE,
  [S.DEPLOYING]: S.ACTIVE, [S.DEPLOYWAIT]: S.ACTIVE,
  [S.CLEANING]: S.AVAILABLE, [S.CLEANWAIT]: S.AVAILABLE,
  [S.DELETING]: S.AVAILABLE,
  [S.INSPECTING]: S.MANAGEABLE, [S.INSPECTWAIT]: S.MANAGEABLE,
  [S.ADOPTING]: S.ACTIVE, [S.RESCUING]: S.RESCUE, [S.RESCUEWAIT]: S.RESCUE, [S.UNRESCUING]: S.ACTIVE,
};

/** [from, event, to] — the whole machine. */
export const TRANSITIONS: readonly (readonly [string, ProvisionEvent, string])[] = [
  [S.ENROLL, 'manage', S.VERIFYING],
  [S.VERIFYING, 'done', S.MANAGEABLE],
  [S.VERIFYING, 'fail', S.ENROLL],
  [S.AVAILABLE, 'deploy', S.DEPLOYING],
  [S.DEPLOYING, 'fail', S.DEPLOYFAIL],
  [S.DEPLOYFAIL, 'rebuild', S.DEPLOYING],
  [S.DEPLOYFAIL, 'deploy', S.DEPLOYING],
  [S.DEPLOYING, 'wait', S.DEPLOYWAIT],
  [S.DEPLOYWAIT, 'resume', S.DEPLOYING],
  [S.DEPLOYWAIT, 'fail', S.DEPLOYFAIL],
  [S.DEPLOYWAIT, 'abort', S.DEPLOYFAIL],
  [S.DEPLOYING, 'done', S.ACTIVE],
  [S.ACTIVE, 'rebuild', S.DEPLOYING],
  [S.ACTIVE, 'delete', S.DELETING],
  [S.DEPLOYWAIT, 'delete', S.DELETING],
  [S.DEPLOYFAIL, 'delete', S.DELETING],
  [S.DELETING, 'fail', S.ERROR],
  [S.DELETING, 'clean', S.CLEANING],
  [S.CLEANING, 'done', S.AVAILABLE],
  [S.CLEANING, 'fail', S.CLEANFAIL],
  [S.CLEANWAIT, 'fail', S.CLEANFAIL],
  [S.CLEANWAIT, 'abort', S.CLEANFAIL],
  [S.CLEANING, 'wait', S.CLEANWAIT],
  [S.CLEANWAIT, 'resume', S.CLEANING],
  [S.CLEANFAIL, 'manage', S.MANAGEABLE],
  [S.MANAGEABLE, 'provide', S.CLEANING],
  [S.MANAGEABLE, 'clean', S.CLEANING],
  [S.CLEANING, 'manage', S.MANAGEABLE],
  [S.AVAILABLE, 'manage', S.MANAGEABLE],
  [S.ERROR, 'rebuild', S.DEPLOYING],
  [S.ERROR, 'delete', S.DELETING],
  [S.MANAGEABLE, 'inspect', S.INSPECTING],
  [S.INSPECTING, 'done', S.MANAGEABLE],
  [S.INSPECTING, 'fail', S.INSPECTFAIL],
  [S.INSPECTING, 'wait', S.INSPECTWAIT],
  [S.INSPECTWAIT, 'done', S.MANAGEABLE],
  [S.INSPECTWAIT, 'fail', S.INSPECTFAIL],
  [S.INSPECTWAIT, 'abort', S.INSPECTFAIL],
  [S.INSPECTFAIL, 'manage', S.MANAGEABLE],
  [S.INSPECTFAIL, 'inspect', S.INSPECTING],
  [S.ACTIVE, 'rescue', S.RESCUING],
  [S.RESCUING, 'done', S.RESCUE],
  [S.RESCUING, 'wait', S.RESCUEWAIT],
  [S.RESCUEWAIT, 'resume', S.RESCUING],
  [S.RESCUE, 'rescue', S.RESCUING],
  [S.RESCUE, 'delete', S.DELETING],
  [S.RESCUEWAIT, 'fail', S.RESCUEFAIL],
  [S.RESCUING, 'fail', S.RESCUEFAIL],
  [S.RESCUEWAIT, 'abort', S.RESCUEFAIL],
  [S.RESCUEFAIL, 'rescue', S.RESCUING],
  [S.RESCUEFAIL, 'unrescue', S.UNRESCUING],
  [S.RESCUEFAIL, 'delete', S.DELETING],
  [S.RESCUEWAIT, 'delete', S.DELETING],
  [S.RESCUE, 'unrescue', S.UNRESCUING],
  [S.UNRESCUING, 'done', S.ACTIVE],
  [S.UNRESCUING, 'fail', S.UNRESCUEFAIL],
  [S.UNRESCUEFAIL, 'rescue', S.RESCUING],
  [S.UNRESCUEFAIL, 'unrescue', S.UNRESCUING],
  [S.UNRESCUEFAIL, 'delete', S.DELETING],
  [S.MANAGEABLE, 'adopt', S.ADOPTING],
  [S.ADOPTING, 'done', S.ACTIVE],
  [S.ADOPTING, 'fail', S.ADOPTFAIL],
  [S.ADOPTFAIL, 'adopt', S.ADOPTING],
  [S.ADOPTFAIL, 'manage', S.MANAGEABLE],
];

const table = new Map<string, string>();
for (const [from, ev, to] of TRANSITIONS) table.set(`${from}\0${ev}`, to);

/** The state an event leads to from a state, or undefined when the machine does not allow it. */
export function next(from: string, event: ProvisionEvent): string | undefined {
  return table.get(`${from}\0${event}`);
}

/** Events allowed from a state (for error messages). */
export function eventsFrom(from: string): ProvisionEvent[] {
  return TRANSITIONS.filter(([f]) => f === from).map(([, e]) => e);
}

/** The API's provision verbs (PUT .../states/provision {"target": ...}) and the event each fires. */
export const VERBS: Readonly<Record<string, ProvisionEvent>> = {
  manage: 'manage', provide: 'provide', inspect: 'inspect', clean: 'clean', active: 'deploy', deploy: 'deploy',
  rebuild: 'rebuild', deleted: 'delete', undeploy: 'delete', abort: 'abort', adopt: 'adopt', rescue: 'rescue', unrescue: 'unrescue',
};

/** The fail state that follows when work in `state` is interrupted. */
export function failStateOf(state: string): string | undefined {
  return next(state, 'fail');
}

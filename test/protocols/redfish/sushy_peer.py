"""Drive a Redfish BMC with python3-sushy: the operations Ironic's redfish driver performs.

Usage: sushy_peer.py URL USER PASSWORD SYSTEM_ID ACTION...
Actions: list, power, boot:TARGET:ENABLED[:MODE], reset:TYPE, bench:N (Redfish value names,
e.g. boot:Pxe:Once:UEFI, reset:ForceOff).
Prints one JSON object per action.
"""
import json
import sys
import time

import sushy


def v(x):
    return getattr(x, 'value', x)


url, user, password, system_id = sys.argv[1:5]
root = sushy.Sushy(url, username=user, password=password, verify=False)
try:
    for action in sys.argv[5:]:
        if action == 'list':
            print(json.dumps({'systems': sorted(root.get_system_collection().members_identities)}))
        elif action == 'power':
            print(json.dumps({'power': v(root.get_system(system_id).power_state)}))
        elif action.startswith('boot:'):
            _, target, enabled, *mode = action.split(':')
            s = root.get_system(system_id)
            s.set_system_boot_options(target=sushy.BootSource(target), enabled=sushy.BootSourceOverrideEnabled(enabled),
                                      mode=sushy.BootSourceOverrideMode(mode[0]) if mode else None)
            s.refresh()
            print(json.dumps({'boot': {'target': v(s.boot.target), 'enabled': v(s.boot.enabled), 'mode': v(s.boot.mode)}}))
        elif action.startswith('reset:'):
            s = root.get_system(system_id)
            s.reset_system(sushy.ResetType(action.split(':', 1)[1]))
            s.refresh()
            print(json.dumps({'reset': action.split(':', 1)[1], 'power': v(s.power_state)}))
        elif action.startswith('bench:'):
            n = int(action.split(':', 1)[1])
            s = root.get_system(system_id)
            t0 = time.monotonic()
            for _ in range(n):
                s.refresh()
                s.power_state
            print(json.dumps({'bench': n, 'seconds': time.monotonic() - t0}))
        else:
            raise SystemExit('unknown action ' + action)
        sys.stdout.flush()
finally:
    root._conn.close()

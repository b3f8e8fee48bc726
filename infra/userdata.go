package main

import (
	"fmt"
	"slices"
	"strings"
)

// UserData is the first-boot script of a Nimbus instance: it writes
// /etc/nimbus/env (addresses and names only, never secrets: credentials
// come from the instance profile) and enables the role's units.
type UserData struct {
	// Role is "web" (web front end and scaler) or "worker".
	Role string
	// Units are the systemd units to enable.
	Units []string
	// Env becomes /etc/nimbus/env, with NIMBUS_ROLE added.
	Env map[string]string
	// StopTimeoutSeconds, if set, overrides the units' TimeoutStopSec so a
	// worker can finish draining.
	StopTimeoutSeconds int
}

// Render returns the script.
func (u UserData) Render() (string, error) {
	if u.Role == "" || len(u.Units) == 0 {
		return "", fmt.Errorf("user data needs a role and units")
	}
	env := map[string]string{"NIMBUS_ROLE": u.Role}
	for k, v := range u.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k, v := range env {
		if !envKeyPattern.MatchString(k) || strings.ContainsAny(v, "\n\r\"'\\$`") {
			return "", fmt.Errorf("environment entry %q=%q cannot go into an environment file", k, v)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	b.WriteString("# Nimbus " + u.Role + " first boot (written by Pulumi, infra/userdata.go).\n")
	b.WriteString("# No secrets here: credentials come from the instance profile.\n")
	b.WriteString("set -euo pipefail\n\n")
	b.WriteString("install -d -m 0750 -o root -g nimbus /etc/nimbus\n")
	b.WriteString("cat > /etc/nimbus/env <<'NIMBUS_ENV'\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, env[k])
	}
	b.WriteString("NIMBUS_ENV\n")
	b.WriteString("chown root:nimbus /etc/nimbus/env\n")
	b.WriteString("chmod 0640 /etc/nimbus/env\n\n")
	if u.StopTimeoutSeconds > 0 {
		for _, unit := range u.Units {
			fmt.Fprintf(&b, "install -d /etc/systemd/system/%s.d\n", unit)
			fmt.Fprintf(&b, "printf '[Service]\\nTimeoutStopSec=%d\\n' > /etc/systemd/system/%s.d/drain.conf\n", u.StopTimeoutSeconds, unit)
		}
		b.WriteString("systemctl daemon-reload\n\n")
	}
	units := strings.Join(u.Units, " ")
	// An instance launched into a warm pool boots once to initialise and is
	// then stopped; its units start when it boots again to enter service.
	b.WriteString("token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token || true)\n")
	b.WriteString("state=$(curl -sf -H \"X-aws-ec2-metadata-token: ${token}\" http://169.254.169.254/latest/meta-data/autoscaling/target-lifecycle-state || true)\n")
	b.WriteString("case \"${state}\" in\n")
	fmt.Fprintf(&b, "  Warmed:*) systemctl enable %s ;;\n", units)
	fmt.Fprintf(&b, "  *) systemctl enable --now %s ;;\n", units)
	b.WriteString("esac\n")
	return b.String(), nil
}

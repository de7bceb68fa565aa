package rollout

// String names where the secret lives ("env WEB_ROOT_PASSWORD" or
// "file /etc/fleetreset/pw"), for messages. It never reads the secret.
func (r SecretRef) String() string {
	switch {
	case r.Env != "" && r.File != "":
		return "env " + r.Env + " and file " + r.File
	case r.Env != "":
		return "env " + r.Env
	case r.File != "":
		return "file " + r.File
	}
	return "empty secret reference"
}

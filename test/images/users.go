package images

// Busybox images that run as a user other than root, for runAsNonRoot and
// supplementalGroupsPolicy: one names its user, one gives a UID.
const (
	BusyboxNamedUser = "knode.local/busybox-named-user:1"
	BusyboxUID       = "knode.local/busybox-uid:1"
)

// WriteBusyboxUsers writes BusyboxNamedUser (USER app) to named and
// BusyboxUID (USER 1000) to numeric. Both images' /etc/passwd has app
// with UID 1000, and /etc/group makes app a member of group extra (5000),
// which supplementalGroupsPolicy Merge adds and Strict does not.
func WriteBusyboxUsers(named, numeric, busyboxBinary string) error {
	files, err := busyboxFiles(busyboxBinary, nil)
	if err != nil {
		return err
	}
	for i := range files {
		switch files[i].name {
		case "etc/passwd":
			files[i].data = append(files[i].data, "app:x:1000:1000:app:/:/bin/sh\n"...)
		case "etc/group":
			files[i].data = append(files[i].data, "app:x:1000:\nextra:x:5000:app\n"...)
		}
	}
	if err := write(named, BusyboxNamedUser, files, busyboxConfig("app")); err != nil {
		return err
	}
	return write(numeric, BusyboxUID, files, busyboxConfig("1000"))
}

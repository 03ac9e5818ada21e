# Appended by dom0/init.sh to Xen's xen-hotplug-common.sh after its `exec 2>>xen-hotplug.log`:
# trace every hotplug script with timestamps into that log ($EPOCHREALTIME costs no fork).
PS4='+ ${EPOCHREALTIME} '
set -x

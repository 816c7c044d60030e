# A user and group that exist before provisioning (e.g. from the image).
printf 'bob:x:1200:1300:Bob:/home/bob:/bin/sh\n' >> "$ROOT/etc/passwd"
printf 'bob:!:19000:0:99999:7:::\n' >> "$ROOT/etc/shadow"
printf 'bobgrp:x:1300:\n' >> "$ROOT/etc/group"
printf 'bobgrp:!::\n' >> "$ROOT/etc/gshadow"

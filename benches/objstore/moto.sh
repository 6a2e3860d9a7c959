# Sourced by the object-storage benches: starts moto's S3-compatible server (from .venv: `bash
# tests/python/setup-venv.sh`) on a free port of 127.0.0.1, points the AWS_* variables at it, makes
# the bucket `bench`, and stops the server and removes "$work" on exit. Needs $repo and $work.
py="$repo/.venv/bin/python"
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$repo/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
for _ in $(seq 50); do
  curl -sf "$AWS_ENDPOINT_URL/" >/dev/null && break
  sleep 0.2
done
"$py" -c 'import boto3; boto3.client("s3").create_bucket(Bucket="bench")'

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { # json-file, python expression over `r`
  "$py" -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"
}

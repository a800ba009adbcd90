#!/bin/sh
# Model-written answers of 1-3 KB for `tenbits bench lossless`: the large
# model (Qwen2.5-Coder-1.5B-Instruct, greedy) answering twelve questions of
# the kinds tenbits codes (code with explanation, worked arithmetic,
# explanations in prose). Rerun: sh scripts/make_answers.sh results/answers
# (skips answers already written).
set -eu
out=${1:-results/answers}
bin=${TENBITS:-target/release/tenbits}
mkdir -p "$out"
i=0
while IFS= read -r prompt; do
  i=$((i + 1))
  file=$(printf '%s/answer-%02d.txt' "$out" "$i")
  [ -s "$file" ] && continue
  "$bin" generate --model qwen2.5-coder-1.5b --max-tokens 700 "$prompt" > "$file.part"
  mv "$file.part" "$file"
done <<'PROMPTS'
Write a Python function that merges overlapping intervals, then explain how it works and its running time.
A shop sells pencils at 3 for 40 cents and erasers at 25 cents each. Maria buys 18 pencils and 4 erasers and pays with a 10-dollar bill. Work out her change step by step.
Explain the difference between a process and a thread, with an example of when to use each.
Write a Rust function that checks whether a string of brackets is balanced, with tests, and explain it.
Explain what a hash table is, how collisions are handled, and what its average and worst-case costs are.
A train leaves at 9:40 and travels 210 km at 84 km/h, then stops for 25 minutes, then travels 96 km at 64 km/h. When does it arrive? Show your reasoning.
Write a SQL query that finds, for each department, the employee with the highest salary, and explain it.
Explain how binary search works and write it in JavaScript, covering the off-by-one pitfalls.
What is the time complexity of building a heap from an unsorted array, and why is it not O(n log n)? Explain carefully.
Write a Python class for a least-recently-used cache with get and put in O(1), and explain the design.
Explain the CAP theorem in plain language with one example for each trade-off.
Solve: the sum of three consecutive even numbers is 246. Find them, and check the answer.
PROMPTS

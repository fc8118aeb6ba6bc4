from transformers import AutoModelForCausalLM, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("gpt2", use_flash_attention_2=True)  # expect: A101
args = TrainingArguments(output_dir="x" learning_rate=1e-4)  # expect: S101
args2 = TrainingArguments(output_dir="y", warmup_ratio=0.1)  # expect: A102

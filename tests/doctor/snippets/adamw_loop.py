from transformers import AdamW, get_linear_schedule_with_warmup  # expect: A105
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype="auto")  # expect: A103
optimizer = AdamW(model.parameters(), lr=5e-5)
args = TrainingArguments(output_dir="o", fp16_optimization=True, ...)  # expect: A104
trainer = Trainer(model=model, args=args, tokenizer=tok, optimizers=(optimizer, None))  # expect: A102

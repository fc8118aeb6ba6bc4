# A 2022-style causal LM fine-tune on a gated model with the old dataset helpers
from transformers import AutoModelForCausalLM, AutoTokenizer, TextDataset  # expect: A105
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

model_id = "meta-llama/Llama-2-7b-hf"
tokenizer = AutoTokenizer.from_pretrained(model_id, use_auth_token=True)  # expect: A102
model = AutoModelForCausalLM.from_pretrained(
    model_id,
    use_auth_token=True,  # expect: A102
    load_in_8bit=True,  # expect: A101
)
train_dataset = TextDataset(tokenizer=tokenizer, file_path="train.txt", block_size=128)
training_args = TrainingArguments(
    output_dir="./gpt2-finetuned",
    overwrite_output_dir=True,  # expect: A101
    per_gpu_train_batch_size=4,  # expect: A102
    save_steps=10_000,
    save_total_limit=2,
    adafactor=True,  # expect: A101
)

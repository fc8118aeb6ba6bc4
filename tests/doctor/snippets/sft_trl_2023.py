# SFTTrainer tutorial of mid-2023 (a free Colab T4)
import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainingArguments
from trl import SFTTrainer

base_model = "NousResearch/Llama-2-7b-chat-hf"
bnb_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                bnb_4bit_compute_dtype=torch.float16)
model = AutoModelForCausalLM.from_pretrained(base_model, quantization_config=bnb_config,
                                             device_map={"": 0})
tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=True)
peft_config = LoraConfig(lora_alpha=16, lora_dropout=0.1, r=64, bias="none",
                         task_type="CAUSAL_LM")
training_arguments = TrainingArguments(
    output_dir="./results",
    num_train_epochs=1,
    ...
    evaluation_strategy="steps",  # expect: A102
    eval_steps=50,
)
trainer = SFTTrainer(
    model=model,
    train_dataset=dataset,
    peft_config=peft_config,
    dataset_text_field="text",  # expect: A101
    max_seq_length=None,  # expect: A101
    tokenizer=tokenizer,  # expect: A102
    args=training_arguments,
    packing=False,  # expect: A101
)
